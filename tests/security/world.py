"""One small console, built once per test module: the standard cast (tests/conftest.py) and one
object of every kind the routes take, all in billing's team, made without a worker (the engine's
attempts are played in this process, as `drive` does).

`fingerprint()` is what "nothing changed" means: a checksum of every row of every table the
console owns, minus the columns a refused request may touch by design (a token's last use)."""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone as dt_timezone
from types import SimpleNamespace

from django.apps import apps as django_apps
from django.db import connection

from tests.runs.factories import make_version, step

ROLES = ("author", "approver", "operator", "viewer", "admin", "outsider", "anonymous")
# Columns every request with a token or a sign-in writes: they prove use, not a change.
VOLATILE_COLUMNS = {"accounts_apitoken": {"last_used_at"}, "accounts_user": {"last_login"}}
# Tables that are not the console's state: sessions and caches of the framework.
SKIPPED_TABLES = {"django_session"}


@dataclass
class World:
    users: dict = field(default_factory=dict)  # role -> User (anonymous: None)
    tokens: dict = field(default_factory=dict)  # role -> API key
    objects: dict = field(default_factory=dict)  # kind -> object the routes take
    sessions: dict = field(default_factory=dict)  # role -> session key of its sign-in
    clients: dict = field(default_factory=dict)  # (role, "session" | "token") -> APIClient
    fingerprint: dict = field(default_factory=dict)  # the rows as built, table -> checksum

    def client(self, role: str, transport: str):
        """The role's client, made once per module: a client loads the middleware on its first
        request, and whitenoise's scan of the static files costs 0.2 s each time."""
        from django.conf import settings
        from http.cookies import SimpleCookie
        from rest_framework.test import APIClient

        key = (role, "session" if role == "anonymous" else transport)
        if key not in self.clients:
            client = self.clients[key] = APIClient()
            if transport == "token" and role != "anonymous":
                client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.tokens[role]}")
            elif role != "anonymous":
                client.force_login(self.users[role])
                self.sessions[role] = client.cookies[settings.SESSION_COOKIE_NAME].value
        client = self.clients[key]
        # Only the sign-in travels: a sign-out answered earlier (rolled back) or a message cookie
        # must not change who the next request is.
        client.cookies = SimpleCookie()
        if key[1] == "session" and role in self.sessions:
            client.cookies[settings.SESSION_COOKIE_NAME] = self.sessions[role]
        return client


def _user(username: str, **flags):
    from apps.accounts.models import User

    # No password: clients sign in with force_login, and hashing costs time for nothing.
    user = User(username=username, email=f"{username}@example.com", **flags)
    user.set_unusable_password()
    user.save()
    return user


def _member(team, username: str, *roles: str):
    from apps.accounts.models import Membership

    user = _user(username)
    for role in roles:
        Membership.objects.create(user=user, team=team, role=role)
    return user


def _play(run):
    """Claim and run every queued attempt of `run` here, until nothing is left (the `drive` fixture)."""
    from apps.runs import tasks
    from apps.runs.models import AttemptState, StepAttempt

    while attempt := StepAttempt.objects.filter(step_run__run=run, state=AttemptState.QUEUED).order_by("pk").first():
        tasks.run_attempt.run(attempt.pk)
    run.refresh_from_db()
    return run


def build(artifact_dir) -> World:
    from django.utils import timezone as django_timezone

    from apps.accounts.models import ApproverGroup, Team
    from apps.accounts.services import issue_token
    from apps.approvals import delegation, links
    from apps.approvals import services as approvals
    from apps.approvals.models import ApprovalRequest
    from apps.catalog.models import AllowedHost, Connection
    from apps.incidents.groups import group_key
    from apps.incidents.models import Incident
    from apps.knowledge.models import Runbook
    from apps.monitoring.models import Alert, AlertKind
    from apps.runs import engine
    from apps.triggers import services as triggers
    from apps.triggers.models import Backfill, DeadLetter
    from apps.workflows.models import GitSource, Workflow

    world = World()
    billing = Team.objects.create(slug="billing", name="Billing")
    people_ops = Team.objects.create(slug="people-ops", name="People Ops")
    users = world.users
    users["author"] = _member(billing, "ada-author", "author")
    users["approver"] = _member(billing, "abe-approver", "approver")
    users["operator"] = _member(billing, "otto-operator", "operator")
    users["viewer"] = _member(billing, "vic-viewer", "viewer")
    users["outsider"] = _member(people_ops, "olga-outsider", "author", "operator", "approver")
    # Staff and superuser as `load_demo` makes platform admins, so the Django admin site is theirs too.
    users["admin"] = _user("pat-platform", is_platform_admin=True, is_staff=True, is_superuser=True)
    users["anonymous"] = None
    for role, user in users.items():
        if user is not None:
            world.tokens[role] = issue_token(user, "matrix")[1]
    group = ApproverGroup.objects.create(slug="billing-approvers", name="Billing approvers", team=billing)
    group.members.set([users["approver"]])

    operator, objects = users["operator"], world.objects
    objects["team"] = billing
    # Two versions (the diff pages need them), a schedule (next runs, backfills) and a webhook.
    spec_triggers = [{"schedule": {"cron": "0 6 * * *", "timezone": "UTC", "calendar": None, "catch_up": "skip"}},
                     {"webhook": {"batch": None}}]
    make_version(billing, [step("hello", params={"message": "one"})], name="ledger", author=users["author"])
    version = make_version(billing, [step("hello", params={"message": "two"})], name="ledger", author=users["author"],
                           triggers=spec_triggers)
    workflow = Workflow.objects.get(pk=version.workflow_id)
    triggers.sync_triggers(workflow)
    objects["workflow"], objects["version"] = workflow, version
    objects["webhook"] = triggers.rotate_webhook_secret(None, workflow)[0]

    paused_version = make_version(billing, [step("note", params={"n": 1}),
                                            step("load", "test.fail", needs=["note"], on_failure="pause")],
                                  name="payroll", author=users["author"])
    objects["paused_run"] = _play(engine.start_run(operator, paused_version))
    objects["step_run"] = objects["paused_run"].step_runs.get(step_id="load")
    objects["checkpoint"] = ApprovalRequest.objects.get(run=objects["paused_run"], kind="checkpoint")
    objects["failure_group"] = SimpleNamespace(key=group_key(paused_version.workflow_id, "load",
                                                             objects["checkpoint"].error_signature))
    failed_version = make_version(billing, [step("load", "test.fail")], name="export", author=users["author"])
    objects["failed_run"] = _play(engine.start_run(operator, failed_version))
    gated_version = make_version(billing, [step("pay", params={"amount": 10}, approval={
        "group": group.slug, "quorum": 1, "timeout": None, "escalate_to": None, "on_expiry": "reject"})],
        name="payout", author=users["author"])
    objects["gated_run"] = _play(engine.start_run(operator, gated_version))
    objects["gate"] = ApprovalRequest.objects.get(run=objects["gated_run"], kind="gate")
    # The approver is away: a colleague outside the cast decides for them (so no role's access changes).
    cover = _member(billing, "dee-delegate", "viewer")
    now = django_timezone.now()
    objects["delegation"] = delegation.create_delegation(users["approver"], delegate=cover, starts_at=now,
                                                         ends_at=now + timedelta(days=30))
    objects["gate_link"] = SimpleNamespace(token=links.token_for(objects["gate"], users["approver"]))

    # A risky step (its approval names the group) approved, then failed: skipping it is an approver's call.
    risky_version = make_version(billing, [step("pay", "test.fail", on_failure="pause", approval={
        "group": group.slug, "quorum": 1, "timeout": None, "escalate_to": None, "on_expiry": "reject"})],
        name="risky-payout", author=users["author"])
    risky_run = _play(engine.start_run(operator, risky_version))
    approvals.decide_gate(users["approver"], ApprovalRequest.objects.get(run=risky_run, kind="gate"), "approve")
    objects["risky_step_run"] = _play(risky_run).step_runs.get(step_id="pay")

    run_folder = artifact_dir / "runs" / str(objects["paused_run"].pk)
    run_folder.mkdir(parents=True, exist_ok=True)
    (run_folder / "rejects.csv").write_text("id,reason\n1,bad\n")
    objects["artifact"] = f"runs/{objects['paused_run'].pk}/rejects.csv"

    objects["incident"] = Incident.objects.create(team=billing, title="Invoice export failed",
                                                  error_message="HTTP 429", opened_by=operator)
    objects["alert"] = Alert.objects.create(team=billing, workflow=workflow, kind=AlertKind.ANOMALY,
                                            dedup_key="anomaly:ledger", title="ledger wrote no rows")
    objects["connection"] = Connection.objects.create(name="billing-api", kind="http", team=billing,
                                                      url="https://billing.example.com")
    objects["allowed_host"] = AllowedHost.objects.create(pattern="billing.example.com", note="billing API")
    # A Git source whose local path is outside FLOWDECK_GIT_LOCAL_ROOTS: a sync reports that at
    # once and git never runs.
    objects["git_source"] = GitSource.objects.create(team=billing, url=str(artifact_dir / "no-repo"),
                                                     webhook_token_sha256="0" * 64)
    objects["runbook"] = Runbook.objects.create(path="sftp.md", title="SFTP uploads", content_hash="x",
                                                body="Check the key.")
    start = datetime(2026, 11, 1, tzinfo=dt_timezone.utc)
    objects["backfill"] = Backfill.objects.create(workflow=workflow, team=billing, start=start,
                                                  end=start + timedelta(days=2), created_by=operator)
    objects["dead_letter"] = DeadLetter.objects.create(
        workflow=workflow, team=billing, source="redis", connection="billing-stream", queue="invoices",
        message_key="m-1", body='{"invoice": "A-1"}', payload={"invoice": "A-1"}, error="no customer", deliveries=3)
    objects["operator_token"] = issue_token(operator, "ci-deploy")[0]
    for role in ROLES:  # signed in here, outside every test's savepoint, so the sessions outlive each test
        for transport in ("session", "token"):
            world.client(role, transport)
    # Every test starts from this state (its savepoint is rolled back), so it is read once.
    world.fingerprint = fingerprint()
    return world


def _tables() -> list[tuple[str, str, list[str]]]:
    """(table, primary key column, columns) of every model table the console's apps own."""
    tables = []
    for model in django_apps.get_models(include_auto_created=True):
        table = model._meta.db_table
        if table in SKIPPED_TABLES or model._meta.proxy:
            continue
        skip = VOLATILE_COLUMNS.get(table, set())
        columns = [f.column for f in model._meta.concrete_fields if f.column not in skip]
        tables.append((table, model._meta.pk.column, columns))
    return tables


def fingerprint() -> dict[str, str]:
    """table -> checksum of its rows (in primary key order)."""
    quote = connection.ops.quote_name
    sums = {}
    with connection.cursor() as cursor:
        for table, pk, columns in _tables():
            cursor.execute(f"SELECT {', '.join(map(quote, columns))} FROM {quote(table)} ORDER BY {quote(pk)}")
            sums[table] = hashlib.sha256(json.dumps(cursor.fetchall(), default=str).encode()).hexdigest()
    return sums


def changed_tables(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(table for table in after if before.get(table) != after[table])
