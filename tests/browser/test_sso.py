"""Single sign-on in Chromium against a real OpenID Connect provider (the npm package
oidc-provider, started on 127.0.0.1 by tests/oidc_provider/provider.mjs): a person signs in
through it and lands on home with the roles their groups map to; after the provider drops one
of their groups, the next sign-in takes that role away, and the audit log shows it."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from apps.accounts.models import ApproverGroup

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_SCRIPT = ROOT / "tests" / "oidc_provider" / "provider.mjs"
CLIENT_ID, CLIENT_SECRET = "flowdeck-tests", "a-client-secret-for-tests-only"
GROUP_MAP = {
    "billing-devs": {"teams": {"billing": ["author", "operator"]}},
    "billing-leads": {"teams": {"billing": ["approver"]}, "approver_groups": ["billing-approvers"]},
}


def people(users_file: Path, *groups: str) -> None:
    users_file.write_text(json.dumps({"grace": {"email": "grace@example.com", "name": "Grace Hopper",
                                                "groups": list(groups)}}))


@pytest.fixture
def oidc_provider(live_server, tmp_path, settings):
    """The provider's issuer and its people file; Flowdeck is configured as its client."""
    if shutil.which("node") is None or not (ROOT / "node_modules" / "oidc-provider").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("node or node_modules/oidc-provider is missing: install Node.js and run npm ci")
        pytest.skip("node or node_modules/oidc-provider is missing: install Node.js and run npm ci")
    users_file = tmp_path / "people.json"
    people(users_file, "billing-devs", "billing-leads", "wifi-users")
    env = os.environ | {"CLIENT_ID": CLIENT_ID, "CLIENT_SECRET": CLIENT_SECRET, "USERS_FILE": str(users_file),
                        "REDIRECT_URI": live_server.url + reverse("accounts:sso_callback")}
    process = subprocess.Popen(["node", str(PROVIDER_SCRIPT)], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = process.stdout.readline()  # the script prints its issuer once it listens
        if not line:
            pytest.fail(f"the OIDC provider did not start: {process.stderr.read()}")
        settings.FLOWDECK_OIDC_ISSUER = json.loads(line)["issuer"]
        settings.OIDC_RP_CLIENT_ID, settings.OIDC_RP_CLIENT_SECRET = CLIENT_ID, CLIENT_SECRET
        settings.FLOWDECK_OIDC_GROUP_MAP = json.dumps(GROUP_MAP)
        yield users_file
    finally:
        process.terminate()
        process.wait(timeout=10)


def sign_in_through_provider(page, live_server):
    page.get_by_role("link", name="Sign in with single sign-on").click()
    if page.url.startswith(live_server.url):
        return  # the provider remembered the person and sent them straight back
    page.get_by_placeholder("Enter any login").fill("grace")
    page.get_by_placeholder("and password").fill("anything: the test provider takes any password")
    page.get_by_role("button", name="Sign-in").click()


def test_sign_in_through_the_provider_gives_the_roles_of_its_groups_and_takes_them_back(
        open_page, screenshot, live_server, oidc_provider, team, platform_admin):
    approvers = ApproverGroup.objects.create(slug="billing-approvers", name="Billing approvers", team=team)
    page = open_page(None)
    # The provider's development pages ask for a web font; this machine has no internet.
    page.context.route("https://fonts.googleapis.com/**", lambda route: route.abort())
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()  # local accounts stay
    screenshot(page, "sso-login-light")
    for name, options in {"sso-login-dark": {"color_scheme": "dark"},
                          "sso-login-phone": {"viewport": {"width": 390, "height": 844}}}.items():
        screenshot(open_page(None, **options), name)

    sign_in_through_provider(page, live_server)
    page.wait_for_url(f"{live_server.url}/")
    teams = page.locator("#teams-h").locator("..")
    for role in ("Billing — Approver", "Billing — Author", "Billing — Operator"):
        expect(teams).to_contain_text(role)
    expect(page.locator(".who")).to_contain_text("Grace Hopper")
    assert [member.username for member in approvers.members.all()] == ["grace"]

    people(oidc_provider, "billing-devs", "wifi-users")  # the provider drops grace from billing-leads
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{live_server.url}/accounts/login/")
    sign_in_through_provider(page, live_server)
    page.wait_for_url(f"{live_server.url}/")
    expect(teams).to_contain_text("Billing — Author")
    expect(teams).to_contain_text("Billing — Operator")
    expect(teams).not_to_contain_text("Approver")
    assert not approvers.members.exists()

    audit = open_page(platform_admin)
    audit.goto(f"{live_server.url}{reverse('audit:list')}?action=membership.revoked")
    events = audit.locator("#events tbody tr")
    expect(events).to_have_count(1)
    expect(events).to_contain_text("billing")
    expect(events).to_contain_text("'role': 'approver'")
    expect(events).to_contain_text("'user': 'grace'")
