"""The demo's run history: four weeks of runs of every demo workflow with the shapes the engine
writes, a few failures, retries and decided checkpoints, approvals by their quorum; loaded once,
and shown on the pages people open first. Every queue the demo's steps use is one the Procfile's
worker consumes."""

import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from apps.catalog.registry import get_step_type
from apps.workflows.plan import plan_for

from apps.accounts.models import User
from apps.approvals.models import ApprovalRequest, RequestKind, RequestState, Verdict
from apps.runs.models import AttemptState, Run, RunState, StepAttempt, StepState
from apps.workflows.models import Workflow

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def demo(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.FLOWDECK_DATA_ROOT = tmp_path / "var" / "data"
    call_command("load_demo", "--no-incidents", stdout=io.StringIO())


def test_the_demo_loads_weeks_of_runs_once_on_queues_the_procfile_worker_consumes(demo):
    runs = Run.objects.all()
    assert set(runs.values_list("workflow__name", flat=True)) == set(Workflow.objects.values_list("name", flat=True))
    first, last = runs.order_by("created_at").first(), runs.order_by("created_at").last()
    assert (last.created_at - first.created_at).days >= 21
    assert set(runs.values_list("state", flat=True)) == {RunState.SUCCEEDED, RunState.FAILED}
    assert runs.filter(state=RunState.FAILED).count() == 2
    count = runs.count()
    call_command("load_demo", "--no-incidents", stdout=io.StringIO())
    assert Run.objects.count() == count

    worker_line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("worker:"))
    consumed = set(re.search(r"-Q (\S+)", worker_line).group(1).split(","))
    used = {step.queue or get_step_type(step.type).queue
            for workflow in Workflow.objects.all() for step in plan_for(workflow.current_version_id).steps.values()}
    assert "etl" in used and used <= consumed


def test_past_runs_keep_the_engines_shapes_and_show_on_the_pages(demo, client):
    for run in Run.objects.filter(state=RunState.SUCCEEDED).prefetch_related("step_runs__attempts"):
        assert run.created_at <= run.started_at < run.finished_at
        for step_run in run.step_runs.all():
            assert step_run.state in (StepState.SUCCEEDED, StepState.SKIPPED)
            attempts = sorted(step_run.attempts.all(), key=lambda attempt: attempt.number)
            assert [attempt.number for attempt in attempts] == list(range(1, step_run.attempt + 1))
            assert all(attempt.idempotency_key == f"{run.pk}:{step_run.step_id}:{attempt.number}"
                       for attempt in attempts)
            if step_run.state == StepState.SUCCEEDED:
                assert attempts[-1].state == AttemptState.SUCCEEDED and attempts[-1].ended_at == step_run.finished_at
                assert all(a.state == AttemptState.FAILED and a.error_message for a in attempts[:-1])
    retried = StepAttempt.objects.filter(state=AttemptState.FAILED, step_run__state=StepState.SUCCEEDED)
    assert retried.values("step_run").distinct().count() >= 4

    payroll_gates = ApprovalRequest.objects.filter(kind=RequestKind.GATE, step_run__step_id="pay_employees")
    assert payroll_gates and all(
        gate.state == RequestState.APPROVED and gate.quorum == 2
        and sorted(gate.decisions.values_list("person__username", flat=True)) == ["peter", "priya"]
        for gate in payroll_gates)
    checkpoints = ApprovalRequest.objects.filter(kind=RequestKind.CHECKPOINT)
    assert set(checkpoints.values_list("outcome", flat=True)) == {Verdict.RETRY, Verdict.SKIP}
    assert set(checkpoints.values_list("decisions__person__username", flat=True)) == {"oscar"}
    assert not ApprovalRequest.objects.filter(state=RequestState.PENDING).exists()

    client.force_login(User.objects.get(username="oscar"))
    retried = ApprovalRequest.objects.get(kind=RequestKind.CHECKPOINT, outcome=Verdict.RETRY)
    page = client.get(reverse("runs:detail", args=[retried.run_id])).content.decode()
    assert "quality_gate" in page and "max_null_ratio customer_id 0.034" in page
    history = client.get(reverse("approvals:history")).content.decode()
    assert "quality_gate" in history or "nightly-etl" in history
