// A real OpenID Connect provider for the single sign-on tests: the npm package oidc-provider
// (a certified implementation) with one static client, its development login form (any password
// is accepted) and the people of USERS_FILE. The file is read at every sign-in, so a test changes
// someone's groups by rewriting it. Listens on 127.0.0.1 on a free port and prints its issuer.
//
// Environment: CLIENT_ID, CLIENT_SECRET, REDIRECT_URI, USERS_FILE
// (JSON: {"login": {"email": ..., "name": ..., "groups": [...]}}).
import { readFileSync } from "node:fs";
import { createServer } from "node:http";

import Provider from "oidc-provider";

const server = createServer();
server.listen(0, "127.0.0.1", () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: process.env.CLIENT_ID,
      client_secret: process.env.CLIENT_SECRET,
      redirect_uris: [process.env.REDIRECT_URI],
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_post",
    }],
    cookies: { keys: ["flowdeck-tests-only"] },
    scopes: ["openid", "email", "profile", "groups"],
    claims: {
      openid: ["sub"],
      email: ["email", "email_verified"],
      profile: ["name", "preferred_username"],
      groups: ["groups"],
    },
    async findAccount(ctx, accountId) {
      const person = JSON.parse(readFileSync(process.env.USERS_FILE, "utf8"))[accountId];
      if (!person) return undefined;
      return {
        accountId,
        async claims() {
          return { sub: accountId, preferred_username: accountId, email_verified: true, ...person };
        },
      };
    },
    // A first-party client: grant what it asks for instead of showing a consent page.
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(ctx.oidc.params.scope);
      await grant.save();
      return grant;
    },
  });
  server.on("request", provider.callback());
  console.log(JSON.stringify({ issuer }));
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
