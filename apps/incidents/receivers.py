"""Opening incidents from the engine's signals: a run that pauses or fails, a step that failed."""

from apps.incidents.services import record_failure
from apps.runs.models import RunState

PAUSED_OR_FAILED = {RunState.PAUSED, RunState.FAILED}


def _team_and_workflow(run):
    workflow = getattr(run, "workflow", None)
    team = getattr(run, "team", None) or getattr(workflow, "team", None)
    return team, workflow


def on_step_failed(sender, step_run, attempt=None, run=None, error_type="", error_message="", compensation=False,
                   **kwargs):
    """`attempt` is None when the step failed before any attempt (template error, rejected approval)."""
    run = run or step_run.run
    team, workflow = _team_and_workflow(run)
    step_id = getattr(step_run, "step_id", "") or ""
    error_type = error_type or getattr(attempt, "error_type", "") or ""
    error_message = error_message or getattr(attempt, "error_message", "") or ""
    if compensation:
        step_id = f"{step_id} (compensation)"
    record_failure(
        team=team, workflow=workflow, workflow_version=getattr(run, "version", None), run_id=run.pk,
        step_run_id=step_run.pk, step_id=step_id, step_type=getattr(step_run, "step_type", "") or "",
        inputs=getattr(run, "inputs", None) or {}, error_type=error_type, error_message=error_message,
        error_signature=getattr(attempt, "error_signature", "") or f"{error_type}: {error_message}"[:500],
        log_tail=_log_tail(step_run, attempt),
        title=f"{workflow.name if workflow else 'run'} · {step_id}: {error_type or 'failed'}",
    )


def on_run_state_changed(sender, run, before, after, **kwargs):
    """A run that fails or pauses without a failing step (e.g. a timeout) still gets an incident."""
    if str(after) not in PAUSED_OR_FAILED:
        return
    from apps.incidents.models import Incident

    # A failing step announces itself through step_failed (sent right after this signal).
    if run.step_runs.filter(state="failed").exists() or Incident.objects.filter(run_id=run.pk).exists():
        return
    team, workflow = _team_and_workflow(run)
    if team is None:
        return
    record_failure(team=team, workflow=workflow, workflow_version=getattr(run, "version", None), run_id=run.pk,
                   inputs=getattr(run, "inputs", None) or {}, error_signature=f"run {after}",
                   error_message=getattr(run, "failure_summary", "") or "",
                   title=f"{workflow.name if workflow else 'run'}: run {after}")


def _log_tail(step_run, attempt) -> str:
    lines = getattr(attempt, "log_lines", None) or getattr(step_run, "log_lines", None)
    if lines is None:
        return ""
    if hasattr(lines, "all"):
        lines = list(lines.all().order_by("-pk")[:50])[::-1]
        return "\n".join(str(getattr(line, "message", line)) for line in lines)
    return "\n".join(str(line) for line in list(lines)[-50:])


def connect() -> None:
    from apps.runs import signals

    signals.step_failed.connect(on_step_failed, dispatch_uid="incidents.on_step_failed")
    signals.run_state_changed.connect(on_run_state_changed, dispatch_uid="incidents.on_run_state_changed")
