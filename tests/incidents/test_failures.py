import pytest

from apps.incidents.models import Incident, IncidentStatus
from apps.incidents.services import record_failure, resolve
from apps.incidents.models import RootCauseCategory

pytestmark = pytest.mark.django_db


def test_a_recurring_failure_is_linked_to_the_open_incident_not_duplicated(team):
    first, created = record_failure(team=team, title="load · copy: OSError", step_id="copy",
                                    error_signature="oserror: [errno <n>] no space left on device", run_id=1)
    again, created_again = record_failure(team=team, title="load · copy: OSError", step_id="copy",
                                          error_signature="oserror: [errno <n>] no space left on device", run_id=2)
    assert created and not created_again and again.pk == first.pk
    again.refresh_from_db()
    assert again.occurrences == 2 and again.occurrence_log.count() == 2


def test_another_signature_or_a_resolved_incident_opens_a_new_one(team, operator):
    first, _ = record_failure(team=team, title="a", step_id="copy", error_signature="sig-1")
    other, created = record_failure(team=team, title="b", step_id="copy", error_signature="sig-2")
    assert created and other.pk != first.pk
    resolve(operator, first.pk, category=RootCauseCategory.objects.get(slug="disk-full"),
            root_cause_description="full", resolution="purged")
    reopened, created = record_failure(team=team, title="a", step_id="copy", error_signature="sig-1")
    assert created and reopened.pk != first.pk
    assert Incident.objects.filter(status=IncidentStatus.OPEN).count() == 2


def test_engine_signals_open_one_incident_per_failing_step_and_signature(team):
    signals = pytest.importorskip("apps.runs.signals")
    from apps.runs.models import Run, StepRun
    from apps.workflows.models import Workflow, WorkflowVersion

    workflow = Workflow.objects.create(team=team, name="nightly-load")
    spec = {"name": "nightly-load", "steps": [{"id": "copy", "type": "file_transform", "with": {}, "needs": []}]}
    version = WorkflowVersion.objects.create(workflow=workflow, number=1, source="", spec=spec, source_sha256="x")
    for attempt in range(2):
        run = Run.objects.create(workflow=workflow, version=version, team=team, inputs={"date": "2024-03-01"})
        step_run = StepRun.objects.create(run=run, step_id="copy", position=0, step_type="file_transform",
                                          state="failed")
        run.state = "paused"
        signals.run_state_changed.send(sender=Run, run=run, before="running", after="paused", old_state="running",
                                       new_state="paused", actor=None)
        signals.step_failed.send(sender=StepRun, step_run=step_run, run=run, attempt=None, error_type="OSError",
                                 error_message="[Errno 28] No space left on device", compensation=False)
    incident = Incident.objects.get()
    assert incident.occurrences == 2
    assert incident.workflow == workflow and incident.workflow_version == version
    assert incident.step_type == "file_transform" and incident.inputs == {"date": "2024-03-01"}
    assert "No space left" in incident.error_message
