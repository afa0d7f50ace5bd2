"""The access-control matrix: every route of the URL configuration x the standard cast (author,
approver, operator, viewer, platform admin, another team's member, anonymous), by session and,
for the API, by token. Who may use each route is declared in ACCESS below; a route missing from
it fails with "declare who may use <route>", so no new route slips in undeclared.

A role the table allows must be served (2xx, a redirect that is not to a sign-in page, or 409
when the object's state forbids the action). Any other role is refused as the product refuses
today (apps/accounts/access.py): 404 for another team's member on a route naming billing's
object, 403 for a member without the role, a redirect to sign in (pages) or 401/403 (API) for
anonymous, and every refused request leaves every table as it was. A method nobody is declared
for may be answered, but must change nothing for anyone. Allowed requests run in a savepoint
rolled back at once, so each role meets the same objects.
"""

import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
from django.db import transaction
from django.urls import reverse

from tests.security.conftest import SIZES
from tests.security.routes import all_routes, openapi_methods
from tests.security.world import ROLES, changed_tables, fingerprint

TEAM = frozenset({"author", "approver", "operator", "viewer", "admin"})
OPERATORS = frozenset({"author", "operator", "admin"})  # an author may run what they wrote
AUTHORS = frozenset({"author", "admin"})
ADMIN = frozenset({"admin"})
SIGNED_IN = TEAM | {"outsider"}
ANYONE = SIGNED_IN | {"anonymous"}
NOBODY = frozenset()
# Roles that hold the role somewhere: the outsider is an author, operator and approver of People Ops.
AUTHORS_ANYWHERE = AUTHORS | {"outsider"}
OPERATORS_ANYWHERE = OPERATORS | {"outsider"}

YAML = "name: matrix-new\nsteps:\n  - id: hello\n    type: echo\n    with:\n      message: hi\n"
DECIDE_RETRY = {"verdict": "retry", "reason_code": "transient", "comment": "checked by the matrix"}
END_RUN = {"reason_code": "unrecoverable", "comment": "checked by the matrix"}
RETRY = {"reason_code": "transient", "comment": "checked by the matrix"}
SKIP = {"reason_code": "not_needed", "comment": "checked by the matrix"}


@dataclass(frozen=True)
class Ref:
    """A body value standing for the id of one of the console's objects."""

    kind: str


# A period after the world's own delegation (the approver's), so it does not overlap it.
DELEGATE_PAGE = {"delegate": "dee-delegate", "starts_at": "2099-06-01T09:00", "ends_at": "2099-06-03T09:00"}
DELEGATE_API = {"delegate": "dee-delegate", "starts_at": "2099-06-01T09:00:00Z", "ends_at": "2099-06-03T09:00:00Z"}
DELEGATORS = frozenset({"author", "approver", "operator", "admin"})  # an author decides checkpoints too
GIT_SOURCE = {"team": "billing", "url": "https://git.example.com/billing/flows.git", "branch": "main", "folder": "flows"}
BULK_APPROVE = {"ids": [Ref("gate")], "verdict": "approve", "comment": "checked by the matrix"}
GROUP_RETRY = {**DECIDE_RETRY, "confirm": "yes"}
GROUP_RETRY_API = DECIDE_RETRY


@dataclass(frozen=True)
class Use:
    """Who may use a route, by method, and what to send. `on` names the object the route's `pk`
    (or other id) takes; `served` are roles answered without effect (the refusal is in the
    answer's body, e.g. bulk results), checked unchanged; `refused` replaces the expected
    refusal statuses for some roles."""

    get: frozenset = NOBODY
    post: frozenset = NOBODY
    put: frozenset | None = None
    patch: frozenset | None = None
    delete: frozenset | None = None
    on: str | None = None
    body: dict = field(default_factory=dict)
    query: dict = field(default_factory=dict)
    served: frozenset = NOBODY
    refused: dict = field(default_factory=dict)
    answers: frozenset = NOBODY  # statuses that also count as served (signing out redirects to sign in)
    label: str = ""

    def methods(self) -> dict[str, frozenset]:
        declared = {"GET": self.get, "POST": self.post, "PUT": self.put, "PATCH": self.patch, "DELETE": self.delete}
        return {method: roles for method, roles in declared.items() if roles is not None}


def hidden(*roles) -> dict:
    """Roles refused with 404, as if the object did not exist for them."""
    return dict.fromkeys(roles, {404})


ACCESS: dict[str, Use | tuple[Use, ...]] = {
    # --- Pages ------------------------------------------------------------------------------------
    "": Use(get=SIGNED_IN),
    "home/failing/": Use(get=SIGNED_IN),
    "accounts/login/": Use(get=ANYONE, post=ANYONE, body={"username": "nobody", "password": "wrong"}),
    "accounts/logout/": Use(post=ANYONE, answers=frozenset({302})),
    # Anyone may start a single sign-on; this console has none configured, so both answer 404
    # (tests/browser/test_sso.py signs in through a real provider).
    "accounts/sso/": Use(get=ANYONE, answers=frozenset({404})),
    "accounts/sso/callback/": Use(get=ANYONE, answers=frozenset({404})),
    "accounts/tokens/": Use(get=SIGNED_IN),
    "accounts/tokens/new/": Use(post=SIGNED_IN, body={"name": "matrix-new"}),
    # Only the token's owner revokes it; anyone else is sent back to their own tokens page, told so.
    "accounts/tokens/<int:token_id>/revoke/": Use(post=frozenset({"operator"}), on="operator_token",
                                                  served=SIGNED_IN - {"operator"}),
    "catalog/": Use(get=SIGNED_IN),
    "catalog/types/<str:name>/": Use(get=SIGNED_IN, on="step_type"),
    "catalog/connections/": Use(get=ADMIN),
    "catalog/connections/new/": Use(get=ADMIN, post=ADMIN, body={
        "name": "matrix-api", "kind": "http", "url": "https://matrix.example.com", "team": "billing"}),
    "catalog/connections/<slug:name>/edit/": Use(get=ADMIN, post=ADMIN, on="connection", body={
        "name": "billing-api", "kind": "http", "url": "https://billing.example.com/v2"},
        refused={"outsider": {403}}),
    "catalog/connections/<slug:name>/delete/": Use(post=ADMIN, on="connection", refused={"outsider": {403}}),
    "catalog/allowed-hosts/new/": Use(post=ADMIN, body={"pattern": "matrix.example.com"}),
    "catalog/allowed-hosts/<int:host_id>/remove/": Use(post=ADMIN, on="allowed_host", refused={"outsider": {403}}),
    "workflows/": Use(get=SIGNED_IN),
    # Another team's author is shown the form again: billing is not among the teams offered.
    "workflows/new/": Use(get=AUTHORS_ANYWHERE, post=AUTHORS, served=frozenset({"outsider"}),
                          body={"team": "billing", "source": YAML}),
    "workflows/validate/": Use(post=AUTHORS_ANYWHERE, body={"source": YAML}),
    "workflows/<int:pk>/": Use(get=TEAM, on="workflow"),
    "workflows/<int:pk>/edit/": Use(get=AUTHORS, post=AUTHORS, on="workflow", body={"source": YAML.replace(
        "matrix-new", "ledger")}),
    "workflows/<int:pk>/diff/": Use(get=TEAM, on="workflow"),
    # Another team's author is shown the form again: billing is not among the teams offered.
    "workflows/git/": Use(get=SIGNED_IN, post=AUTHORS, served=frozenset({"outsider"}), body=GIT_SOURCE),
    "workflows/git/<int:pk>/": Use(get=TEAM, on="git_source"),
    "workflows/git/<int:pk>/sync/": Use(post=AUTHORS, on="git_source"),
    "workflows/git/<int:pk>/token/": Use(post=AUTHORS, on="git_source"),
    "workflows/git/<int:pk>/delete/": Use(post=AUTHORS, on="git_source"),
    # The Git host's push hook: only the source's token counts, never a session.
    "workflows/git/<int:pk>/hook/": Use(on="git_source", refused=dict.fromkeys(ROLES, {403})),
    "workflows/<int:pk>/versions/<int:number>/": Use(get=TEAM, on="workflow"),
    "runs/": Use(get=SIGNED_IN),
    "runs/dashboard/": Use(get=SIGNED_IN),
    "runs/start/<int:workflow_pk>/": Use(get=OPERATORS, post=OPERATORS, on="workflow"),
    "runs/<int:pk>/": Use(get=TEAM, on="paused_run"),
    "runs/<int:pk>/cancel/": Use(post=OPERATORS, on="paused_run"),
    "runs/<int:pk>/rerun/": Use(post=OPERATORS, on="failed_run"),
    "runs/<int:pk>/abort/": Use(post=OPERATORS, on="paused_run", body=END_RUN),
    "runs/<int:pk>/compensate-and-abort/": Use(post=OPERATORS, on="paused_run", body=END_RUN),
    "runs/<int:pk>/artifacts/<path:path>": Use(get=TEAM, on="paused_run"),
    "runs/<int:pk>/steps/<str:step_id>/": Use(get=TEAM, on="paused_run"),
    "approvals/": Use(get=SIGNED_IN),
    "approvals/history/": Use(get=SIGNED_IN),
    # Bulk answers everyone; only a member of the gate's group gets an approval through.
    "approvals/bulk/": Use(post=frozenset({"approver"}), served=SIGNED_IN - {"approver"}, body=BULK_APPROVE),
    "approvals/<int:pk>/": Use(get=TEAM, on="checkpoint"),
    "approvals/<int:pk>/decide/": (
        Use(post=OPERATORS, on="checkpoint", body=DECIDE_RETRY, label="checkpoint"),
        # Only the group's members decide a gate: the platform admin is not one.
        Use(post=frozenset({"approver"}), on="gate", body={"verdict": "approve", "comment": "ok"}, label="gate"),
    ),
    "approvals/<int:pk>/suggestions/": Use(get=TEAM, on="checkpoint"),
    # Whoever decides something may delegate it; a viewer (nothing to delegate) and another team's
    # member (the colleague is not theirs) get the form back with the reason.
    "approvals/delegations/": Use(get=SIGNED_IN, post=DELEGATORS, body=DELEGATE_PAGE,
                                  refused={"viewer": {400}, "outsider": {400}}),
    "approvals/delegations/<int:pk>/end/": Use(post=frozenset({"approver", "admin"}), on="delegation",
                                               refused=hidden("author", "operator", "viewer")),
    # A decision link is no authority: only a signed-in decider of the request uses it.
    "approvals/link/<str:token>/": Use(get=frozenset({"approver"}), post=frozenset({"approver"}), on="gate_link",
                                       body={"verdict": "approve"}),
    "incidents/": Use(get=SIGNED_IN),
    "incidents/new/": Use(get=SIGNED_IN, post=OPERATORS, served=frozenset({"approver", "viewer", "outsider"}),
                          body={"team": "billing", "title": "Found by the matrix"}),
    "incidents/categories/": Use(get=ADMIN, post=ADMIN, body={
        "slug": "matrix", "name": "Matrix", "description": "Made by the matrix", "is_active": "on"}),
    # A failure group is seen by the team; its decision answers everyone who sees it, each member
    # refused (in the answer) for whoever may not decide it.
    "incidents/groups/<str:key>/": Use(get=TEAM, on="failure_group"),
    "incidents/groups/<str:key>/decide/": Use(post=OPERATORS, on="failure_group", body=GROUP_RETRY,
                                              served=TEAM - OPERATORS),
    "incidents/<int:pk>/": Use(get=TEAM, on="incident"),
    "incidents/<int:pk>/own/": Use(post=OPERATORS, on="incident"),
    "incidents/<int:pk>/resolve/": Use(post=OPERATORS, on="incident", body={
        "category": "network", "root_cause_description": "a proxy", "resolution": "replaced it"}),
    "knowledge/admin/": Use(get=ADMIN, post=ADMIN),
    "knowledge/runbooks/": Use(get=SIGNED_IN),
    "knowledge/runbooks/<int:pk>/": Use(get=SIGNED_IN, on="runbook"),
    "knowledge/incidents/<int:incident_id>/feedback/": Use(post=TEAM, on="incident", body={
        "target_kind": "hypothesis", "target_ref": "network", "verdict": "helpful"}),
    "knowledge/incidents/<int:incident_id>/summary/": Use(get=TEAM, post=OPERATORS, on="incident"),
    "knowledge/incidents/<int:incident_id>/suggestions/": Use(get=TEAM, on="incident"),
    "triggers/workflows/<int:pk>/": Use(get=TEAM, on="workflow"),
    "triggers/workflows/<int:pk>/next-runs/": Use(get=TEAM, on="workflow"),
    "triggers/workflows/<int:pk>/webhook/rotate/": Use(post=AUTHORS, on="workflow"),
    "triggers/workflows/<int:pk>/schedules/paused/": Use(post=OPERATORS, on="workflow", body={"paused": "true"}),
    "triggers/workflows/<int:pk>/backfills/": Use(post=OPERATORS, on="workflow", body={
        "start": "2026-11-01", "end": "2026-11-02", "timezone": "UTC"}),
    "triggers/backfills/<int:pk>/": Use(get=TEAM, on="backfill"),
    "triggers/backfills/<int:pk>/cancel/": Use(post=OPERATORS, on="backfill"),
    "triggers/runs/<int:run_pk>/events/": Use(get=TEAM, on="paused_run"),
    "triggers/dead-letters/<int:pk>/replay/": Use(post=OPERATORS, on="dead_letter"),
    # Public: the URL's token finds the workflow, the signature proves the sender; unsigned, 401.
    "triggers/hooks/<str:token>/": Use(on="webhook", body={"period": "2026-11"}, refused=dict.fromkeys(ROLES, {401})),
    "monitoring/alerts/": Use(get=SIGNED_IN),
    "monitoring/alerts/<int:pk>/": Use(get=TEAM, on="alert"),
    "monitoring/alerts/<int:pk>/close/": Use(post=OPERATORS, on="alert"),
    "monitoring/alerts/<int:pk>/acknowledge/": Use(post=OPERATORS, on="alert"),
    "monitoring/workflows/<int:workflow_pk>/": Use(get=TEAM, post=AUTHORS, on="workflow", body={
        "history_runs": 20, "min_history": 5, "threshold": 4, "check_duration": "on"}),
    "monitoring/datasets/": Use(get=SIGNED_IN),
    "monitoring/datasets/show/": Use(get=SIGNED_IN, query={"uri": "s3://billing/ledger"}),
    "monitoring/runs/<int:run_pk>/sla/": Use(get=TEAM, on="paused_run"),
    # Prometheus signs in with FLOWDECK_METRICS_TOKEN, which no person of the cast sends.
    "metrics": Use(refused=dict.fromkeys(ROLES, {401})),
    # The demo's stand-in services answer only the demo-services connection's secret, which no person holds.
    "demo/services/<path:path>": Use(refused=dict.fromkeys(ROLES, {404})),
    # An API path with a trailing slash is sent on to the path without it (308 keeps the method).
    "api/v1/^(?P<route>.+)/$": Use(get=ANYONE, post=ANYONE, answers=frozenset({308})),
    "audit/": Use(get=ADMIN),
    "platform/": Use(get=ADMIN),
    "platform/workers/": Use(get=ADMIN),
    "platform/step-types/": Use(get=ADMIN),
    "platform/people/": Use(get=ADMIN),
    "platform/search/": Use(get=SIGNED_IN, query={"q": "ledger"}),
    "workflows/editor/preview/": Use(post=AUTHORS_ANYWHERE, body={"source": YAML}),
    "workflows/editor/step-form/": Use(get=AUTHORS_ANYWHERE, query={"type": "echo"}),
    "workflows/editor/add-step/": Use(post=AUTHORS_ANYWHERE, body={"type": "echo", "source": YAML}),
    "api/schema/": Use(get=ANYONE),
    "api/docs/": Use(get=ANYONE),
    "api/redoc/": Use(get=ANYONE),
    # --- The REST API --------------------------------------------------------------------------------
    "api/v1/me": Use(get=SIGNED_IN),
    "api/v1/teams": Use(get=SIGNED_IN),
    "api/v1/tokens": Use(get=SIGNED_IN, post=SIGNED_IN, body={"name": "matrix-new"}),
    "api/v1/tokens/<int:token_id>/revoke": Use(post=frozenset({"operator"}), on="operator_token",
                                               refused=hidden(*SIGNED_IN - {"operator"})),
    "api/v1/step-types": Use(get=SIGNED_IN),
    "api/v1/step-types/<str:name>": Use(get=SIGNED_IN, on="step_type"),
    # Everyone sees the connections their teams' steps may use; only platform admins change them.
    "api/v1/connections": Use(get=SIGNED_IN, post=ADMIN, body={
        "name": "matrix-api", "kind": "http", "url": "https://matrix.example.com", "team": "billing"}),
    # Another team's member: 404 reading it, 403 changing it (the admin check comes before the lookup).
    "api/v1/connections/<slug:name>": Use(get=TEAM, put=ADMIN, patch=ADMIN, delete=ADMIN, on="connection", body={
        "name": "billing-api", "kind": "http", "url": "https://billing.example.com/v2", "team": "billing"},
        refused={"outsider": {403, 404}}),
    "api/v1/allowed-hosts": Use(get=ADMIN, post=ADMIN, body={"pattern": "matrix.example.com"}),
    "api/v1/allowed-hosts/<int:host_id>": Use(delete=ADMIN, on="allowed_host", refused={"outsider": {403}}),
    # Another team's author is told billing is not among their teams (400), as if it did not exist.
    "api/v1/workflows": Use(get=SIGNED_IN, post=AUTHORS, body={"team": "billing", "source": YAML},
                            refused={"outsider": {400}}),
    "api/v1/workflows/schema": Use(get=ANYONE),
    "api/v1/workflows/validate": Use(post=SIGNED_IN, body={"source": YAML}),
    "api/v1/workflows/<int:pk>": Use(get=TEAM, on="workflow"),
    "api/v1/workflows/git-sources": Use(get=SIGNED_IN, post=AUTHORS, body=GIT_SOURCE, refused={"outsider": {400}}),
    "api/v1/workflows/git-sources/<int:pk>": Use(get=TEAM, delete=AUTHORS, on="git_source"),
    "api/v1/workflows/git-sources/<int:pk>/sync": Use(post=AUTHORS, on="git_source"),
    "api/v1/workflows/git-sources/<int:pk>/token": Use(post=AUTHORS, on="git_source"),
    "api/v1/workflows/<int:pk>/versions": Use(get=TEAM, on="workflow"),
    "api/v1/workflows/<int:pk>/versions/<int:number>": Use(get=TEAM, on="workflow"),
    "api/v1/workflows/<int:pk>/diff": Use(get=TEAM, on="workflow", query={"from": 1, "to": 2}),
    "api/v1/runs": Use(get=SIGNED_IN),
    "api/v1/runs/<int:pk>": Use(get=TEAM, on="paused_run"),
    "api/v1/runs/<int:pk>/cancel": Use(post=OPERATORS, on="paused_run"),
    "api/v1/runs/<int:pk>/rerun": Use(post=OPERATORS, on="failed_run"),
    "api/v1/runs/<int:pk>/abort": Use(post=OPERATORS, on="paused_run", body=END_RUN),
    "api/v1/runs/<int:pk>/compensate-and-abort": Use(post=OPERATORS, on="paused_run", body=END_RUN),
    "api/v1/runs/<int:pk>/steps/<str:step_id>/logs": Use(get=TEAM, on="paused_run"),
    "api/v1/step-runs/<int:pk>/retry": Use(post=OPERATORS, on="step_run", body=RETRY),
    "api/v1/step-runs/<int:pk>/skip": (
        Use(post=OPERATORS, on="step_run", body=SKIP, label="plain step"),
        # Skipping a failed risky step needs the approver role too (finding 1 of issue 12): in the
        # cast only the platform admin holds both; an operator is refused and nothing changes.
        Use(post=ADMIN, on="risky_step_run", body=SKIP, label="risky step",
            refused=dict.fromkeys(TEAM - ADMIN, {403})),
    ),
    "api/v1/workflows/<int:pk>/runs": Use(post=OPERATORS, on="workflow", body={"inputs": {}}),
    "api/v1/approvals": Use(get=SIGNED_IN),
    "api/v1/approvals/delegations": Use(get=SIGNED_IN, post=DELEGATORS, body=DELEGATE_API,
                                        refused={"viewer": {400}, "outsider": {400}}),
    "api/v1/approvals/delegations/<int:pk>/end": Use(post=frozenset({"approver", "admin"}), on="delegation",
                                                     refused=hidden("author", "operator", "viewer")),
    "api/v1/approvals/bulk": Use(post=frozenset({"approver"}), served=SIGNED_IN - {"approver"}, body=BULK_APPROVE),
    "api/v1/approvals/<int:pk>": Use(get=TEAM, on="checkpoint"),
    "api/v1/approvals/<int:pk>/decide": (
        Use(post=OPERATORS, on="checkpoint", body=DECIDE_RETRY, label="checkpoint"),
        Use(post=frozenset({"approver"}), on="gate", body={"verdict": "approve", "comment": "ok"}, label="gate"),
    ),
    "api/v1/incidents": Use(get=SIGNED_IN, post=OPERATORS, body={"team": "billing", "title": "Found by the matrix"},
                            refused={"outsider": {403}}),
    "api/v1/incidents/groups": Use(get=SIGNED_IN),
    "api/v1/incidents/groups/<str:key>": Use(get=TEAM, on="failure_group"),
    "api/v1/incidents/groups/<str:key>/decide": Use(post=OPERATORS, on="failure_group", body=GROUP_RETRY_API,
                                                    served=TEAM - OPERATORS),
    "api/v1/incidents/<int:pk>": Use(get=TEAM, on="incident"),
    "api/v1/incidents/<int:pk>/own": Use(post=OPERATORS, on="incident"),
    "api/v1/incidents/<int:pk>/resolve": Use(post=OPERATORS, on="incident", body={
        "category": "network", "root_cause_description": "a proxy", "resolution": "replaced it"}),
    "api/v1/knowledge/suggest": Use(post=SIGNED_IN, body={"text": "HTTP 429 from the bank"}),
    "api/v1/incidents/<int:pk>/suggestions": Use(get=TEAM, on="incident"),
    "api/v1/workflows/<int:pk>/next-runs": Use(get=TEAM, on="workflow"),
    "api/v1/workflows/<int:pk>/history": Use(get=TEAM, on="workflow"),
    "api/v1/teams/<slug:slug>/dashboard": Use(get=TEAM, on="team"),
    "api/v1/workflows/<int:pk>/schedules/pause": Use(post=OPERATORS, on="workflow"),
    "api/v1/workflows/<int:pk>/schedules/resume": Use(post=OPERATORS, on="workflow"),
    "api/v1/workflows/<int:pk>/backfills": Use(post=OPERATORS, on="workflow", body={
        "start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"}),
    "api/v1/backfills/<int:pk>": Use(get=TEAM, on="backfill"),
    "api/v1/backfills/<int:pk>/cancel": Use(post=OPERATORS, on="backfill"),
    "api/v1/runs/<int:pk>/trigger-events": Use(get=TEAM, on="paused_run"),
    "api/v1/workflows/<int:pk>/dead-letters": Use(get=TEAM, on="workflow"),
    "api/v1/dead-letters/<int:pk>/replay": Use(post=OPERATORS, on="dead_letter"),
    "api/v1/alerts": Use(get=SIGNED_IN),
    "api/v1/alerts/<int:pk>": Use(get=TEAM, on="alert"),
    "api/v1/alerts/<int:pk>/acknowledge": Use(post=OPERATORS, on="alert"),
    "api/v1/alerts/<int:pk>/resolve": Use(post=OPERATORS, on="alert", body={"reason": "checked by the matrix"}),
}
# Django's admin site lets only staff in (platform admins, as load_demo makes them); its login page
# is public. What staff may do inside is each ModelAdmin's own rule (the audit log and the run
# history are read-only there: 403), so for them any answer but a server error or a sign-in counts.
ADMIN_SITE = Use(get=ADMIN, post=ADMIN, answers=frozenset({403, 404, 405}),
                 refused=dict.fromkeys(SIGNED_IN - ADMIN, {302}))
ADMIN_SITE_PUBLIC = {"admin/login/": Use(get=ANYONE, post=ANYONE, body={"username": "nobody", "password": "x"}),
                     "admin/logout/": Use(post=ANYONE, answers=frozenset({302}))}


# Server errors found by the matrix, reported and left to the product's owners: each case fails
# until it is fixed (strict xfail), then its line here must go.
KNOWN_SERVER_ERRORS: dict[str, str] = {}


def declared(route) -> tuple[Use, ...]:
    if route.pattern in ACCESS:
        uses = ACCESS[route.pattern]
    elif route.pattern in ADMIN_SITE_PUBLIC:
        uses = ADMIN_SITE_PUBLIC[route.pattern]
    elif route.pattern.startswith("admin/"):
        uses = ADMIN_SITE
    else:
        pytest.fail(f"declare who may use {route.pattern} (route {route.name or 'without a name'}) in "
                    f"tests/security/test_access_matrix.py ACCESS")
    return uses if isinstance(uses, tuple) else (uses,)


# --- Requests -------------------------------------------------------------------------------------

def _admin_object(world, route) -> dict:
    """Values for the admin site's object routes: an existing object of the route's model."""
    from django.apps import apps
    from django.contrib.contenttypes.models import ContentType

    run = world.objects["paused_run"]
    if route.pattern.startswith("admin/r/"):
        return {"content_type_id": ContentType.objects.get_for_model(run).pk, "object_id": run.pk}
    if "app_label" in route.parameters:
        return {"app_label": "accounts"}
    if "url" in route.parameters:  # the catch-all of unknown admin URLs
        return {"url": "no-such-page/"}
    app_label, model_name = route.pattern.split("/")[1:3]
    model = apps.get_model(app_label, model_name)
    first = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
    return dict.fromkeys(route.parameters, first if first is not None else 1)


def path_values(world, route, use: Use) -> dict:
    if route.pattern.startswith("admin/") and route.parameters:
        return _admin_object(world, route)
    objects = world.objects
    target = objects.get(use.on) if use.on else None
    values = {}
    for name in route.parameters:
        if name == "name":
            values[name] = "echo" if use.on == "step_type" else target.name
        elif name == "step_id":
            values[name] = "load"
        elif name == "number":
            values[name] = 1
        elif name == "path":
            values[name] = objects["artifact"]
        elif name == "token":
            values[name] = target.token
        elif name == "key":
            values[name] = target.key
        elif name == "slug":
            values[name] = target.slug
        elif name == "route":
            values[name] = "approvals"
        else:
            values[name] = target.pk
    return values


def _body(world, body: dict) -> dict:
    def value(item):
        if isinstance(item, Ref):
            return world.objects[item.kind].pk
        return [value(part) for part in item] if isinstance(item, list) else item

    return {key: value(item) for key, item in body.items()}


def _send(world, client, method: str, path: str, use: Use, *, api: bool):
    SIZES["matrix_requests"] += 1
    body = _body(world, use.body)
    if method == "GET":
        return client.get(path, use.query)
    if api:
        return client.generic(method, path + _query_string(use.query), json.dumps(body),
                              content_type="application/json")
    return client.generic(method, path, urlencode(body, doseq=True), content_type="application/x-www-form-urlencoded")


def _query_string(query: dict) -> str:
    return "?" + urlencode(query) if query else ""


def _to_sign_in(response) -> bool:
    location = response.get("Location", "")
    return response.status_code == 302 and (location.startswith(reverse("accounts:login"))
                                            or location.startswith(reverse("admin:login")))


def _served(response) -> bool:
    code = response.status_code
    return 200 <= code < 300 or (300 <= code < 400 and not _to_sign_in(response)) or code == 409


def _refused_as_expected(response, role: str, route, use: Use) -> bool:
    code = response.status_code
    if role in use.refused:
        return code in use.refused[role]
    if role == "anonymous":
        return code in (401, 403) if route.is_api else _to_sign_in(response)
    if role == "outsider" and route.parameters:
        return code == 404
    return code == 403


# --- The matrix -----------------------------------------------------------------------------------

def _cells(route, uses):
    """(use, method, role, transport) for every request of this route: GET and POST always, and
    the other methods a use declares."""
    for use in uses:
        for method in sorted({"GET", "POST", *use.methods()}):
            for role in ROLES:
                for transport in ("session", "token") if route.is_api and role != "anonymous" else ("session",):
                    yield use, method, role, transport


ROUTES = all_routes()


@pytest.mark.parametrize("route", [
    pytest.param(route, marks=pytest.mark.xfail(reason=KNOWN_SERVER_ERRORS[route.pattern], strict=True))
    if route.pattern in KNOWN_SERVER_ERRORS else route for route in ROUTES], ids=[route.pattern or "/" for route in ROUTES])
def test_only_the_declared_roles_may_use_the_route(console, route):
    uses = declared(route)
    SIZES["matrix_routes"] += 1
    SIZES["matrix_api_routes"] += route.is_api
    SIZES["matrix_roles"] = len(ROLES)
    problems, refused = [], []
    cells = list(_cells(route, uses))
    SIZES["matrix_cells"] += len(cells)
    base = console.fingerprint
    start = transaction.savepoint()  # to replay the refusals from here if one changed something
    for use, method, role, transport in cells:
        path = route.path(path_values(console, route, use))
        where = f"{method} {path} {use.label} as {role} by {transport}".replace("  ", " ")
        allowed = use.methods().get(method, NOBODY)
        if role in allowed:
            with transaction.atomic():
                response = _send(console, console.client(role, transport), method, path, use, api=route.is_api)
                transaction.set_rollback(True)
            if not (_served(response) or response.status_code in use.answers):
                problems.append(f"{where}: declared allowed, answered {_answer(response)}")
            continue
        refused.append((use, method, role, transport, path, where))
        response = _send(console, console.client(role, transport), method, path, use, api=route.is_api)
        if not allowed:  # nobody is declared for this method: any answer but a server error, no change
            if response.status_code >= 500:
                problems.append(f"{where}: answered {_answer(response)}")
        elif role in use.served:
            if not _served(response):
                problems.append(f"{where}: should be answered (without effect), answered {_answer(response)}")
        elif not _refused_as_expected(response, role, route, use):
            problems.append(f"{where}: should be refused, answered {_answer(response)}")
    SIZES["matrix_refused"] += len(refused)
    after = fingerprint()
    if after != base:
        transaction.savepoint_rollback(start)
        problems.append(f"refused requests changed {changed_tables(base, after)}: {_culprits(console, route, refused)}")
    assert not problems, "\n".join(problems)


def _answer(response) -> str:
    return f"{response.status_code} {response.get('Location', '')}".strip()


def _culprits(world, route, refused) -> list[str]:
    """Which refused request changed what: replayed one by one, each in a rolled-back savepoint."""
    found = []
    for use, method, role, transport, path, where in refused:
        with transaction.atomic():
            before = fingerprint()
            _send(world, world.client(role, transport), method, path, use, api=route.is_api)
            after = fingerprint()
            transaction.set_rollback(True)
        if after != before:
            found.append(f"{where} changed {changed_tables(before, after)}")
    return found


# --- The table, the URL configuration and the OpenAPI schema agree -----------------------------------

def test_every_declared_route_exists():
    patterns = {route.pattern for route in ROUTES}
    stale = sorted(set(ACCESS) - patterns)
    assert not stale, f"ACCESS declares routes the URL configuration no longer has: {stale}"


def test_the_openapi_schema_documents_exactly_the_api_routes_and_their_declared_methods():
    documented = openapi_methods()
    problems = []
    # The trailing-slash redirect is no operation of its own: the schema documents where it points.
    api_routes = [route for route in ROUTES if route.is_api and route.name != "api-without-trailing-slash"]
    for route in api_routes:
        methods = {method for use in declared(route) for method, roles in use.methods().items() if roles}
        in_schema = documented.get(route.openapi_path)
        if in_schema is None:
            problems.append(f"{route.openapi_path} is routed but not in the OpenAPI schema")
        elif in_schema != methods:
            problems.append(f"{route.openapi_path}: the schema documents {sorted(in_schema)}, ACCESS declares "
                            f"{sorted(methods)}")
    routed = {route.openapi_path for route in api_routes}
    problems += [f"{path} is in the OpenAPI schema but not routed" for path in sorted(set(documented) - routed)]
    assert not problems, "\n".join(problems)
