"""Connections belong to a team, or are shared by a platform admin with named teams or all teams:
a step can use only the connections its workflow's team may use, and people see only those."""

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection as db_connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.catalog import services
from apps.catalog.checks import unscoped_connections_check
from apps.catalog.models import Connection
from apps.runs import engine
from apps.runs.models import RunState, StepState
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db


def _call_api(operator, drive, team, connection_name):
    """Run a one-step workflow of `team` that calls /export through `connection_name`."""
    version = make_version(team, [step("call", "http.request",
                                       params={"connection": connection_name, "url": "/export"})])
    return drive(engine.start_run(operator, version))


def _api_connection(make_connection, http_server, name="people-api", **sharing):
    return make_connection(name, kind="http", url=http_server.url, secret="people-token", **sharing)


def test_a_step_cannot_use_another_teams_connection(http_server, allow_local, make_connection, other_team, team,
                                                    operator, drive):
    _api_connection(make_connection, http_server, team=other_team)
    run = _call_api(operator, drive, team, "people-api")
    step_run = run.step_runs.get(step_id="call")
    assert run.state == RunState.FAILED and step_run.state == StepState.FAILED
    assert step_run.attempts.count() == 1  # permanent: never retried
    assert ("There is no connection named 'people-api' that team Billing may use: ask a platform admin to add it "
            "or share it with team Billing") in step_run.error_message
    assert http_server.requests == []


def test_a_sql_step_cannot_read_another_teams_database(sales_db, make_connection, other_team, team, operator, drive):
    make_connection("people-db", url=f"sqlite:///{sales_db}", team=other_team)
    version = make_version(team, [step("read", "sql.query", params={"connection": "people-db",
                                                                    "sql": "SELECT * FROM orders"})])
    run = drive(engine.start_run(operator, version))
    step_run = run.step_runs.get(step_id="read")
    assert run.state == RunState.FAILED and "that team Billing may use" in step_run.error_message
    assert step_run.output in (None, {})


@pytest.mark.parametrize("sharing", ["owned", "shared_with_team", "shared_with_all"])
def test_a_step_uses_a_connection_its_team_may_use(http_server, allow_local, make_connection, team, other_team,
                                                   operator, drive, sharing):
    given = {"owned": {"team": team}, "shared_with_team": {"team": other_team, "shared_with": [team]},
             "shared_with_all": {}}[sharing]
    _api_connection(make_connection, http_server, **given)
    run = _call_api(operator, drive, team, "people-api")
    assert run.state == RunState.SUCCEEDED
    assert [request["path"] for request in http_server.requests] == ["/export"]
    assert http_server.requests[0]["headers"]["Authorization"] == "Bearer people-token"


@pytest.fixture
def three_connections(make_connection, team, other_team):
    make_connection("billing-db", url="sqlite:////data/billing.db", team=team)
    make_connection("people-db", url="sqlite:////data/people.db", team=other_team)
    make_connection("shared-api", kind="http", url="https://api.example.com", team=other_team, shared_with=[team])
    make_connection("everyone-api", kind="http", url="https://everyone.example.com")


def test_members_see_only_the_connections_their_team_may_use(client_for, api_for, author, outsider,
                                                             three_connections):
    page = client_for(author).get(reverse("catalog:list")).content.decode()
    for name in ("billing-db", "shared-api", "everyone-api"):
        assert f"<code>{name}</code>" in page
    assert "people-db" not in page
    api = api_for(author)
    listed = api.get("/api/v1/connections").json()
    names = [c["name"] for c in listed["results"]] if isinstance(listed, dict) else [c["name"] for c in listed]
    assert names == ["billing-db", "everyone-api", "shared-api"]
    assert "/data/billing.db" not in api.get("/api/v1/connections").content.decode()  # members never see URLs
    assert api.get("/api/v1/connections/people-db").status_code == 404
    assert api.get("/api/v1/connections", {"team": "people-ops"}).status_code == 404
    assert api_for(outsider).get("/api/v1/connections/billing-db").status_code == 404


def test_connections_of_one_team_for_the_editor(api_for, platform_admin, three_connections):
    listed = api_for(platform_admin).get("/api/v1/connections", {"team": "people-ops"}).json()
    names = [c["name"] for c in listed["results"]] if isinstance(listed, dict) else [c["name"] for c in listed]
    assert names == ["everyone-api", "people-db", "shared-api"]


def test_a_platform_admin_shares_and_unshares_through_the_api_audited(api_for, platform_admin, make_connection,
                                                                      team, other_team):
    make_connection("people-db", url="sqlite:////data/people.db", team=other_team)
    api = api_for(platform_admin)
    shared = api.patch("/api/v1/connections/people-db", {"shared_with": ["billing"]}, format="json")
    assert shared.status_code == 200 and shared.json()["shared_with"] == ["billing"]
    assert Connection.objects.usable_by(team).filter(name="people-db").exists()
    api.patch("/api/v1/connections/people-db", {"shared_with": []}, format="json")
    assert not Connection.objects.usable_by(team).filter(name="people-db").exists()
    events = AuditEvent.objects.filter(action="connection.sharing_changed").order_by("sequence")
    assert [(e.actor, e.before["shared_with"], e.after["shared_with"]) for e in events] == [
        (platform_admin, [], ["billing"]), (platform_admin, ["billing"], [])]
    assert all(e.after["team"] == "people-ops" for e in events)


def test_a_platform_admin_shares_on_the_connection_page(client_for, platform_admin, make_connection, team,
                                                        other_team):
    connection = make_connection("people-db", url="sqlite:////data/people.db", team=other_team)
    response = client_for(platform_admin).post(reverse("catalog:connection_edit", args=["people-db"]), {
        "name": "people-db", "kind": "sql", "url": "sqlite:////data/people.db", "team": other_team.pk,
        "shared_with": [team.pk]})
    assert response.status_code == 302
    assert list(connection.shared_with.all()) == [team]
    event = AuditEvent.objects.get(action="connection.sharing_changed")
    assert event.before["shared_with"] == [] and event.after["shared_with"] == ["billing"]


@pytest.mark.parametrize("who", ["author", "operator", "approver", "outsider"])
def test_only_platform_admins_can_share(request, client_for, api_for, make_connection, team, other_team, who):
    person = request.getfixturevalue(who)
    connection = make_connection("people-db", url="sqlite:////data/people.db", team=other_team)
    refused = api_for(person).patch("/api/v1/connections/people-db", {"shared_with": ["billing"],
                                                                       "shared_with_all": True}, format="json")
    assert refused.status_code == 403
    page = client_for(person).post(reverse("catalog:connection_edit", args=["people-db"]), {
        "name": "people-db", "kind": "sql", "url": "sqlite:////data/people.db", "shared_with_all": "on"})
    assert page.status_code == 403
    with pytest.raises(PermissionDenied):
        services.update_connection(person, connection.pk, team=team, shared_with_all=True)
    connection.refresh_from_db()
    assert connection.team == other_team and not connection.shared_with_all and not connection.shared_with.exists()
    assert not AuditEvent.objects.filter(action="connection.sharing_changed").exists()


def test_a_connection_must_say_who_may_use_it(api_for, client_for, platform_admin):
    response = api_for(platform_admin).post("/api/v1/connections", {
        "name": "crm", "kind": "http", "url": "https://crm.example.com"}, format="json")
    assert response.status_code == 400 and "Say who may use it" in response.json()["team"][0]
    page = client_for(platform_admin).post(reverse("catalog:connection_create"), {
        "name": "crm", "kind": "http", "url": "https://crm.example.com"})
    assert page.status_code == 200 and "Say who may use it" in page.content.decode()
    assert not Connection.objects.exists()


def test_the_check_warns_until_a_platform_admin_scopes_a_migrated_connection(make_connection, platform_admin,
                                                                             team):
    legacy = make_connection("legacy-db", url="sqlite:////data/legacy.db")
    assert unscoped_connections_check(databases=["default"]) == []  # shared with all by a platform admin's choice
    Connection.objects.filter(pk=legacy.pk).update(scoped_at=None)  # as migration 0002 leaves it
    warnings = unscoped_connections_check(databases=["default"])
    assert [w.id for w in warnings] == ["flowdeck.W002"] and "legacy-db" in warnings[0].msg
    services.update_connection(platform_admin, legacy.pk, team=team)
    assert unscoped_connections_check(databases=["default"]) == []


@pytest.mark.django_db(transaction=True)
def test_existing_connections_migrate_as_shared_with_all_teams():
    executor = MigrationExecutor(db_connection)
    executor.migrate([("catalog", "0001_initial")])
    old_apps = executor.loader.project_state([("catalog", "0001_initial")]).apps
    old_apps.get_model("catalog", "Connection").objects.create(name="sales-db", kind="sql",
                                                               url="sqlite:////data/sales.db")
    executor = MigrationExecutor(db_connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    migrated = Connection.objects.get(name="sales-db")
    assert migrated.shared_with_all and migrated.team is None and migrated.scoped_at is None
    assert [w.id for w in unscoped_connections_check(databases=["default"])] == ["flowdeck.W002"]
    assert Connection._meta.get_field("shared_with_all").default is False  # new connections are shared with no one
