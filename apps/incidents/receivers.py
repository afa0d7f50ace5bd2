"""Opening incidents from the engine's signals: a run that pauses or fails, a step that failed."""

from apps.incidents.services import record_failure

PAUSED_OR_FAILED = {"paused", "failed"}


def _team_and_workflow(run):
    workflow = getattr(run, "workflow", None)
    team = getattr(run, "team", None) or getattr(workflow, "team", None)
    return team, workflow


def on_step_failed(sender, step_run, attempt, **kwargs):
    run = step_run.run
    team, workflow = _team_and_workflow(run)
    step_id = getattr(step_run, "step_id", "") or ""
    error_type = getattr(attempt, "error_type", "") or ""
    error_message = getattr(attempt, "error_message", "") or ""
    record_failure(
        team=team, workflow=workflow, workflow_version=getattr(run, "version", None), run_id=run.pk,
        step_run_id=step_run.pk, step_id=step_id, step_type=getattr(step_run, "step_type", "") or "",
        inputs=getattr(run, "inputs", None) or {}, error_type=error_type, error_message=error_message,
        error_signature=getattr(attempt, "error_signature", "") or "",
        log_tail=_log_tail(step_run, attempt),
        title=f"{workflow.name if workflow else 'run'} · {step_id}: {error_type or 'failed'}",
    )


def on_run_state_changed(sender, run, old_state, new_state, **kwargs):
    """A run that fails or pauses without a failing step (e.g. a timeout) still gets an incident."""
    if str(new_state) not in PAUSED_OR_FAILED:
        return
    from apps.incidents.models import Incident

    if Incident.objects.filter(run_id=run.pk).exists():
        return  # its failing step already opened (or recurred) one
    team, workflow = _team_and_workflow(run)
    if team is None:
        return
    record_failure(team=team, workflow=workflow, workflow_version=getattr(run, "version", None), run_id=run.pk,
                   inputs=getattr(run, "inputs", None) or {}, error_signature=f"run {new_state}",
                   title=f"{workflow.name if workflow else 'run'}: run {new_state}")


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
