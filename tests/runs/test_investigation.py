"""The investigation of a failed step: what differs from the last success of the same step (version,
rendered parameters, a connection changed since), the steps it needs, the team's other runs failing
with the same error now; shown on the checkpoint, the step and the incident page and in the API."""

import pytest
from django.urls import reverse

from apps.approvals.models import ApprovalRequest
from apps.catalog import services as catalog
from apps.incidents.models import Incident
from apps.runs import engine
from apps.runs.investigation import investigate
from apps.runs.models import StepRun
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db
ERROR = "no such table: sales_v2"


def load(type_="test.echo", **params):
    return step("load", type_, params={"connection": "warehouse", **params}, on_failure="pause")


@pytest.fixture
def warehouse(platform_admin, team):
    return catalog.create_connection(platform_admin, name="warehouse", kind="sql", url="sqlite:////data/wh.db",
                                     team=team)


@pytest.fixture
def changed_failure(team, operator, platform_admin, drive, warehouse):
    """`load` succeeded at v1; then the connection's URL and the step's table changed (v2), and it failed."""
    succeeded = drive(engine.start_run(operator, make_version(team, [load(table="sales")], name="nightly")))
    assert succeeded.state == "succeeded"
    catalog.update_connection(platform_admin, warehouse.pk, url="sqlite:////data/wh-new.db")
    version = make_version(team, [load("test.fail", table="sales_v2", message=ERROR, permanent=True)], name="nightly")
    failed = drive(engine.start_run(operator, version))
    assert failed.state == "paused"
    return succeeded, StepRun.objects.get(run=failed, step_id="load")


def by_kind(facts):
    return {fact.kind: fact for fact in facts}


def test_a_failure_shows_the_parameter_diff_version_and_connection_changed_since_the_last_success(changed_failure,
                                                                                                warehouse):
    succeeded, failed = changed_failure
    facts = by_kind(investigate(failed))

    assert facts["parameters"].text.startswith(f"3 parameters differ from the last success (run #{succeeded.pk})")
    assert '“table” was "sales", now "sales_v2"' in facts["parameters"].text
    assert facts["parameters"].url == reverse("runs:step", args=[succeeded.pk, "load"])
    assert facts["version"].text == (f"The workflow changed since the last success (run #{succeeded.pk}): "
                                     "it ran v1, this run v2.")
    assert facts["version"].url.endswith("?from=1&to=2") and facts["version"].hints["bad-deploy"] > 0
    connection = facts["connection"]
    assert connection.text.startswith("Connection “warehouse” changed (url) moments before this failure")
    assert f"object_id={warehouse.pk}" in connection.url
    assert connection.hints["config-change"] == max(connection.hints.values())
    assert "no_success" not in facts


def test_a_connection_changed_after_the_failure_is_not_a_cause(team, operator, platform_admin, drive, warehouse):
    drive(engine.start_run(operator, make_version(team, [load(table="sales")], name="nightly")))
    version = make_version(team, [load("test.fail", table="sales", message=ERROR, permanent=True)], name="nightly")
    failed = StepRun.objects.get(run=drive(engine.start_run(operator, version)), step_id="load")
    catalog.update_connection(platform_admin, warehouse.pk, url="sqlite:////data/fixed.db")

    facts = by_kind(investigate(failed))
    assert "connection" not in facts and "version" in facts
    assert "parameters" in facts  # `message` and `permanent` were added as written
    assert "“table”" not in facts["parameters"].text


def test_a_step_that_never_succeeded_has_nothing_to_compare_with(team, operator, drive, warehouse):
    version = make_version(team, [load("test.fail", message=ERROR, permanent=True)], name="nightly")
    failed = StepRun.objects.get(run=drive(engine.start_run(operator, version)), step_id="load")

    facts = investigate(failed)
    assert [fact.kind for fact in facts] == ["no_success"]
    assert "there is no earlier success to compare with" in facts[0].text and not facts[0].hints


def test_other_runs_failing_with_the_same_error_now_are_named(team, operator, drive, warehouse):
    other = make_version(team, [step("export", "test.fail", params={"message": ERROR, "permanent": True})],
                         name="exports")
    others = [drive(engine.start_run(operator, other)) for _ in range(2)]
    version = make_version(team, [load("test.fail", message=ERROR, permanent=True)], name="nightly")
    failed = StepRun.objects.get(run=drive(engine.start_run(operator, version)), step_id="load")

    fact = by_kind(investigate(failed))["same_signature"]
    assert fact.text.startswith("2 other runs of this team failed with the same error within an hour")
    assert f"#{others[1].pk} (exports · export)" in fact.text and f"#{others[0].pk}" in fact.text
    assert set(fact.hints) == {"dependency-outage", "network"}


def test_a_needed_step_that_failed_before_it_succeeded_is_named(team, operator, drive):
    version = make_version(team, [
        step("extract", "test.flaky", params={"succeed_on": 2}, retries={"count": 1}),
        step("load", "test.fail", needs=["extract"], params={"message": ERROR, "permanent": True},
             on_failure="pause")], name="nightly")
    failed = StepRun.objects.get(run=drive(engine.start_run(operator, version)), step_id="load")

    fact = by_kind(investigate(failed))["upstream"]
    assert fact.text == "The step it needs, “extract”, failed before it succeeded (attempt 2)."
    assert fact.hints == {"upstream-late": 0.6}


def test_the_checkpoint_step_and_incident_pages_and_the_api_show_the_facts(changed_failure, client_for, api_for,
                                                                           operator):
    _, failed = changed_failure
    checkpoint = ApprovalRequest.objects.get(step_run=failed, kind="checkpoint")
    incident = Incident.objects.get(run_id=failed.run_id)
    client = client_for(operator)
    expected = "Connection “warehouse” changed (url) moments before this failure"

    for url in (reverse("approvals:detail", args=[checkpoint.pk]), reverse("runs:step", args=[failed.run_id, "load"]),
                reverse("incidents:detail", args=[incident.pk])):
        page = client.get(url).content.decode()
        assert "What changed before it failed" in page and expected in page, url
        assert "weighs toward config change" in page

    api = api_for(operator)
    facts = api.get(reverse("api-incident", args=[incident.pk])).json()["investigation"]
    assert {"version", "parameters", "connection"} <= {fact["kind"] for fact in facts}
    steps = api.get(reverse("api-run", args=[failed.run_id])).json()["step_runs"]
    assert [fact["kind"] for fact in steps[0]["investigation"]] == [fact["kind"] for fact in facts]
