"""One incident per failing step of a run, closed by the decision that settled it, titled in words."""

import pytest

from apps.incidents.models import Incident, IncidentStatus, RootCauseCategory
from apps.incidents.receivers import failure_words
from apps.incidents.services import resolve
from apps.runs import engine
from apps.runs.models import RunState
from tests.runs.factories import decide, make_version, step

pytestmark = pytest.mark.django_db


@pytest.fixture
def paused(team, operator, drive):
    """`paused(type, params)`: a run paused at its failed `load` step; returns that step run."""
    def start(type_="test.fail", params=None):
        version = make_version(team, [step("load", type_, params=params or {"message": "disk is full"},
                                           on_failure="pause")], name="nightly-etl")
        run = drive(engine.start_run(operator, version))
        assert run.state == RunState.PAUSED
        return run.step_runs.get()

    return start


def test_a_retrys_failure_joins_the_open_incident_even_with_another_error(paused, operator, drive):
    step_run = paused()
    decide(operator, step_run, "retry", params_override={"message": "quota exceeded"})
    drive(step_run.run)
    incident = Incident.objects.get()
    assert incident.occurrences == 2 and incident.status == IncidentStatus.OPEN
    assert incident.error_message == "quota exceeded"
    assert list(incident.occurrence_log.values_list("error_message", flat=True)) == ["quota exceeded", "disk is full"]


def test_skipping_the_step_resolves_its_incident_with_the_decision(paused, operator):
    step_run = paused()
    checkpoint = decide(operator, step_run, "skip")
    incident = Incident.objects.get()
    assert incident.status == IncidentStatus.RESOLVED and incident.resolved_by == operator
    assert incident.resolution == (f"Step skipped by {operator.username} at checkpoint #{checkpoint.pk}: "
                                   f"Other (explained in the comment). skip in a test")
    assert incident.root_cause_category is None  # still to be named, and it may be
    resolve(operator, incident.pk, category=RootCauseCategory.objects.get(slug="disk-full"),
            root_cause_description="The landing disk filled", resolution="Purged old files")
    incident.refresh_from_db()
    assert incident.root_cause_category.slug == "disk-full"


def test_aborting_the_run_resolves_its_incident(paused, operator):
    step_run = paused()
    decide(operator, step_run.run, "abort")
    incident = Incident.objects.get()
    assert incident.status == IncidentStatus.RESOLVED and incident.resolution.startswith("Run aborted by ")


def test_a_run_that_succeeds_after_a_retry_resolves_its_incident(paused, operator, drive):
    step_run = paused("test.flaky", {"succeed_on": 2})
    decide(operator, step_run, "retry")
    assert drive(step_run.run).state == RunState.SUCCEEDED
    incident = Incident.objects.get()
    assert incident.status == IncidentStatus.RESOLVED and incident.resolution == "The run succeeded."


def test_titles_say_the_error_in_words(paused):
    paused(params={"message": "Upload to ledger.example.com failed: 503. Retry later", "permanent": True})
    assert Incident.objects.get().title == "nightly-etl · load: Upload to ledger.example.com failed"
    assert failure_words("PermanentStepError", "") == "permanent step error"
    assert failure_words("KeyError", "KeyError: 'net_pay'. While computing payslips") == "KeyError: 'net_pay'"
