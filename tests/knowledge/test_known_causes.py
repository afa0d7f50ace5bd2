"""A failure Flowdeck names itself is shown first as a known cause with its fix link and runbook
section, the same on the checkpoint, the incident page and the API, without loading any model."""

import re

import pytest
from django.urls import reverse

from apps.approvals.models import ApprovalRequest
from apps.catalog.registry import Reason
from apps.incidents.models import Incident
from apps.knowledge.known_causes import MEANINGS, known_cause, runbook_links
from apps.knowledge.runbooks import sync_runbooks
from apps.runs import engine
from apps.runs.models import StepAttempt
from tests.runs.factories import make_version, step

pytestmark = pytest.mark.django_db


@pytest.fixture
def missing_connection(team, operator, drive):
    """A paused run whose `load` step names a connection nobody added; returns its checkpoint."""
    sync_runbooks()
    version = make_version(team, [step("load", "sql.query", params={"connection": "warehouse", "sql": "SELECT 1"},
                                       on_failure="pause")], name="nightly-etl")
    run = drive(engine.start_run(operator, version))
    return ApprovalRequest.objects.get(run=run, kind="checkpoint")


def test_the_reason_is_stored_on_the_attempt_and_the_incident_titled_in_words(missing_connection):
    attempt = StepAttempt.objects.get(step_run=missing_connection.step_run)
    incident = Incident.objects.get()
    assert (attempt.error_reason, attempt.error_detail) == (Reason.CONNECTION_MISSING, {"connection": "warehouse"})
    assert (incident.error_reason, incident.error_detail) == (Reason.CONNECTION_MISSING, {"connection": "warehouse"})
    assert incident.title == "nightly-etl · load: There is no connection named 'warehouse' that team Billing may use"


def test_checkpoint_incident_page_and_api_show_the_known_cause_and_its_fix_first(missing_connection, client_for,
                                                                                 operator, api_for):
    client = client_for(operator)
    checkpoint = client.get(reverse("approvals:suggestions", args=[missing_connection.pk])).content.decode()
    incident = Incident.objects.get()
    page = client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    for html in (checkpoint, page):
        fix = html.index('href="/catalog/connections/new/?name=warehouse"')
        assert "Known cause" in html and "There is no connection “warehouse” this team may use" in html
        assert "Add connection “warehouse”" in html
        assert fix < html.index("Earlier failures with this cause")
        assert re.search(r'href="/knowledge/runbooks/\d+/#missing-connection"', html)
        assert "%" not in html.split("Known cause")[1].split("Earlier failures")[0]  # a fact, not a probability
    ranking = api_for(operator).get(reverse("api-incident-suggestions", args=[incident.pk])).json()
    assert ranking["known_cause"]["reason"] == Reason.CONNECTION_MISSING and ranking["hypotheses"] == []


def test_each_reason_links_to_a_page_that_fixes_it_and_to_its_runbook_section(missing_connection, client_for,
                                                                             platform_admin):
    from apps.catalog import services

    services.create_connection(platform_admin, name="warehouse", kind="sql", url="sqlite:///w.db", secret="s",
                               allow_writes=False, team=None, shared_with=(), shared_with_all=True)
    detail = {"connection": "warehouse", "host": "ledger.example.com", "file": "late.csv", "timeout_seconds": 30,
              "worker": "w1:1", "checks": ["min_rows"], "status": 404, "errors": ["'url' is a required property"]}
    run, client, runbooks = missing_connection.run, client_for(platform_admin), runbook_links()
    for reason in MEANINGS:
        cause = known_cause(reason, detail, workflow_id=run.workflow_id, run_id=run.pk, step_id="load",
                            runbook_sections=runbooks)
        assert "?" not in cause.title and cause.fix_url and cause.runbook_url, reason
        assert client.get(cause.fix_url).status_code == 200, (reason, cause.fix_url)
        runbook_page = client.get(cause.runbook_url).content.decode()
        assert f'id="{cause.runbook_url.split("#")[1]}"' in runbook_page, reason
    assert set(MEANINGS) == {value for name, value in vars(Reason).items() if name.isupper()}


def test_the_fix_links_fill_in_the_connection_and_the_host(client_for, platform_admin):
    client = client_for(platform_admin)
    assert 'value="warehouse"' in client.get("/catalog/connections/new/?name=warehouse").content.decode()
    assert 'value="ledger.example.com"' in client.get("/catalog/connections/?host=ledger.example.com").content.decode()


def test_a_failure_without_a_reason_is_not_a_known_cause():
    assert known_cause("", {}) is None
