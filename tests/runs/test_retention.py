"""Retention: finished runs past the policy go, with their steps, attempts, logs, artifacts and
what other apps hold of them; runs still open and recent runs stay; the audit log says so."""

from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.approvals import services as approvals
from apps.approvals.models import ApprovalRequest
from apps.audit.models import AuditEvent
from apps.monitoring.models import Alert, AlertKind, SlaStatus
from apps.runs import engine
from apps.runs.models import Run, RunState, StepAttempt, StepLogLine, StepRun
from apps.runs.retention import purge_runs
from apps.triggers.models import TriggerEvent, TriggerSource
from tests.runs.factories import decide, make_version, step

pytestmark = pytest.mark.django_db


def age(run, days):
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(days=days))


@pytest.fixture
def history(team, operator, approver, approver_group, drive, settings, tmp_path):
    """Three old finished runs (one approved at a gate, with an SLA, an alert, a trigger event and an
    artifact folder), an old run still paused, and a recent finished run."""
    settings.ARTIFACT_DIR = tmp_path
    gated = make_version(team, [step("load", "test.chatty"), step("pay", needs=["load"], approval={
        "group": approver_group.slug, "quorum": 1, "timeout": None, "escalate_to": None, "on_expiry": "reject"})],
        name="payroll", sla={"max_duration": 3600, "finish_by": None, "timezone": "UTC"})
    plain = make_version(team, [step("load", "test.chatty")], name="ledger")
    failing = make_version(team, [step("load", "test.fail", on_failure="pause")], name="broken")
    old = []
    gate_run = drive(engine.start_run(operator, gated))
    approvals.decide_gate(approver, ApprovalRequest.objects.get(run=gate_run), "approve", "fine")
    old.append(drive(gate_run))
    old += [drive(engine.start_run(operator, plain)) for _ in range(2)]
    paused = drive(engine.start_run(operator, failing))
    recent = drive(engine.start_run(operator, plain))
    for run in [*old, paused]:
        age(run, 120)
    Alert.objects.create(team=team, kind=AlertKind.RUN_PAUSED, dedup_key="old", run=old[0], title="old alert")
    TriggerEvent.objects.create(workflow=old[1].workflow, source=TriggerSource.SCHEDULE, dedup_key="slot-1", run=old[1])
    (tmp_path / "runs" / str(old[2].pk) / "load").mkdir(parents=True)
    (tmp_path / "runs" / str(old[2].pk) / "load" / "output.json").write_text("{}")
    return {"old": old, "paused": paused, "recent": recent, "artifacts": tmp_path}


def test_old_finished_runs_go_with_everything_the_runs_app_holds_of_them(history, django_capture_on_commit_callbacks):
    old = [run.pk for run in history["old"]]
    assert all(run.state == RunState.SUCCEEDED for run in history["old"])
    assert StepLogLine.objects.filter(attempt__step_run__run_id__in=old).exists()
    with django_capture_on_commit_callbacks(execute=True):  # artifact folders go once a batch commits
        report = purge_runs(timedelta(days=90), batch_size=2)
    assert (report.runs, report.batches) == (3, 2)
    assert not Run.objects.filter(pk__in=old).exists()
    assert not StepRun.objects.filter(run_id__in=old).exists()
    assert not StepAttempt.objects.filter(step_run__run_id__in=old).exists()
    assert not StepLogLine.objects.filter(attempt__step_run__run_id__in=old).exists()
    assert not (Path(history["artifacts"]) / "runs" / str(old[2])).exists()
    assert set(Run.objects.values_list("pk", flat=True)) == {history["paused"].pk, history["recent"].pk}
    event = AuditEvent.objects.get(action="runs.purged")
    assert event.after["runs"] == 3 and event.after["batches"] == 2


def test_other_apps_remove_or_detach_their_own_rows(history):
    gate_run, scheduled = history["old"][0], history["old"][1]
    assert ApprovalRequest.objects.filter(run=gate_run).exists() and SlaStatus.objects.filter(run=gate_run).exists()
    purge_runs(timedelta(days=90))
    assert not ApprovalRequest.objects.filter(run_id=gate_run.pk).exists()
    assert not SlaStatus.objects.filter(run_id=gate_run.pk).exists()
    assert Alert.objects.get(dedup_key="old").run is None
    # The ledger keeps the slot's event, so the slot does not start again.
    assert TriggerEvent.objects.get(dedup_key="slot-1", workflow=scheduled.workflow).run is None


def test_a_paused_run_waits_for_its_checkpoint_whatever_its_age(history, operator):
    purge_runs(timedelta(days=90))
    paused = history["paused"]
    assert Run.objects.filter(pk=paused.pk, state=RunState.PAUSED).exists()
    decide(operator, paused.step_runs.get(step_id="load"), "skip")
    assert Run.objects.get(pk=paused.pk).is_finished


def test_a_dry_run_counts_and_removes_nothing(history):
    before = Run.objects.count()
    out = StringIO()
    call_command("purge_runs", "--older-than", "90d", "--dry-run", stdout=out)
    assert "would remove 3 finished runs" in out.getvalue()
    assert Run.objects.count() == before


def test_the_command_refuses_an_age_it_cannot_read_and_removes_nothing(history):
    before = Run.objects.count()
    with pytest.raises(CommandError, match="not an age"):
        call_command("purge_runs", "--older-than", "ninety days")
    assert Run.objects.count() == before
