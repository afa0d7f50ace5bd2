"""The demo works on a fresh machine: from a freshly loaded demo database, a demo workflow run
succeeds through a real Celery worker against the demo's stand-ins (the local SQLite database and
Flowdeck's own demo services), and payroll-run for this month fails its check on purpose and
pauses at a checkpoint."""

from datetime import date

import io
import pytest
from django.core.management import call_command

from apps.approvals.models import ApprovalRequest, RequestKind, RequestState
from apps.runs import engine
from apps.runs.models import RunState, SkipReason, StepState
from apps.workflows.models import Workflow


@pytest.fixture
def demo(settings, tmp_path, live_server):
    """The demo loaded as `make run` loads it, its demo services on the live server."""
    settings.SITE_URL = live_server.url
    settings.VAR_DIR = tmp_path / "var"
    settings.FLOWDECK_DATA_ROOT = tmp_path / "var" / "data"
    call_command("load_demo", "--no-incidents", stdout=io.StringIO())
    return {workflow.name: workflow for workflow in Workflow.objects.select_related("current_version")}


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_demo_workflow_succeeds_and_payroll_pauses_at_its_checkpoint(demo, worker, wait_for):
    from apps.accounts.models import User

    retraining = engine.start_run(User.objects.get(username="dana"), demo["model-retraining"].current_version)
    payroll = engine.start_run(User.objects.get(username="paula"), demo["payroll-run"].current_version,
                               inputs={"period": f"{date.today():%Y-%m}"})

    wait_for(retraining, RunState.SUCCEEDED, RunState.FAILED, RunState.PAUSED)
    steps = {row.step_id: row for row in retraining.step_runs.all()}
    assert retraining.state == RunState.SUCCEEDED, {sid: (r.state, r.error_message) for sid, r in steps.items()}
    assert steps["check_features"].output["rows"] == 1200
    assert steps["evaluate_candidate"].output["json"]["auc"] < steps["evaluate_live"].output["json"]["auc"]
    assert (steps["promote"].state, steps["promote"].skip_reason) == (StepState.SKIPPED, SkipReason.CONDITION)

    wait_for(payroll, RunState.PAUSED, RunState.FAILED, RunState.SUCCEEDED)
    check = payroll.step_runs.get(step_id="check_payslips")
    assert payroll.state == RunState.PAUSED and check.state == StepState.FAILED
    assert "net_pay" in check.error_message
    assert ApprovalRequest.objects.filter(run=payroll, step_run=check, kind=RequestKind.CHECKPOINT,
                                          state=RequestState.PENDING).exists()
