"""Receivers of the engine's signals: open a gate or a checkpoint, withdraw what went stale.

They run inside the engine's transaction while it holds the run's row lock, so a request exists
exactly when the state that needs it does; notifications wait for the commit (see apps.notifications).
"""

from apps.approvals import services
from apps.approvals.models import ApprovalRequest
from apps.runs.models import RunState


def on_step_waiting_approval(sender, step_run, run, approval, **kwargs) -> None:
    services.open_gate(run, step_run, approval)


def on_step_failed(sender, step_run, run, error_type, error_message, compensation, **kwargs) -> None:
    # Only a paused run waits for a person; a failed compensation ends the run instead.
    if run.state == RunState.PAUSED and not compensation:
        services.open_checkpoint(run, step_run, error_type, error_message)


def on_run_state_changed(sender, run, before, after, actor, **kwargs) -> None:
    if before in (RunState.WAITING, RunState.PAUSED) or run.is_finished:
        services.withdraw_stale(run)


def on_runs_purging(sender, run_ids, **kwargs) -> None:
    # Retention removes finished runs; their requests and decisions go with them (the audit log
    # keeps what was decided).
    ApprovalRequest.objects.filter(run_id__in=run_ids).delete()
