"""Incidents from the engine's and the checkpoints' signals: a step that failed or a run that
paused or failed opens one (or joins the open one); a skipped step, or a run compensated,
aborted or succeeding, resolves it with that decision."""

import re

from apps.incidents.services import record_failure, resolve_by_decision
from apps.runs.models import RunState

PAUSED_OR_FAILED = {RunState.PAUSED, RunState.FAILED}
# A run that reached one of these settled its failures, whoever decided.
SETTLED = {RunState.SUCCEEDED: "The run succeeded", RunState.CANCELLED: "The run was aborted",
           RunState.COMPENSATING: "The run was compensated and aborted"}
DECIDED = {"skip": "Step skipped", "compensate": "Run compensated and aborted", "abort": "Run aborted"}
TITLE_WORDS = 120
EXCEPTION_NAME = re.compile(r"[A-Z]\w*(?:Error|Exception|Exit|Interrupt)")


def failure_words(error_type: str, error_message: str) -> str:
    """The error as people say it: the message's first clause, else the error type in words
    ("PermanentStepError" -> "permanent step error"). A clause that is only an exception's name
    keeps what it names ("KeyError: 'net_pay'")."""
    clauses = re.split(r"(?<=\S)(?::|\.)\s", error_message.strip(), maxsplit=2)
    clause = clauses[0].strip()
    if EXCEPTION_NAME.fullmatch(clause) and len(clauses) > 1:
        clause = f"{clause}: {clauses[1].strip()}"
    if clause:
        return clause if len(clause) <= TITLE_WORDS else clause[:TITLE_WORDS - 1].rstrip() + "…"
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", error_type).lower().strip()
    return words or "failed"


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
        error_reason=getattr(attempt, "error_reason", "") or "", error_detail=getattr(attempt, "error_detail", None),
        log_tail=_log_tail(step_run, attempt),
        title=f"{workflow.name if workflow else 'run'} · {step_id}: {failure_words(error_type, error_message)}",
    )


def on_run_state_changed(sender, run, before, after, actor=None, **kwargs):
    """A run that fails or pauses without a failing step (e.g. a timeout) still gets an incident;
    a run that settled resolves the incidents it had open."""
    if str(after) in SETTLED:
        who = f" ({actor.username})" if actor is not None else ""
        resolve_by_decision(actor, resolution=f"{SETTLED[str(after)]}{who}.", run_id=run.pk)
        return
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


def on_checkpoint_decided(sender, request, choice, actor, reason, comment, **kwargs):
    """A checkpoint's skip, compensate or abort resolves the failure's incident with that decision
    (a retry leaves it open: the next failure joins it, a success resolves it)."""
    if choice not in DECIDED:
        return
    resolution = f"{DECIDED[choice]} by {actor.username} at checkpoint #{request.pk}: {reason}. {comment}"
    resolve_by_decision(actor, resolution=resolution, run_id=request.run_id,
                        step_run_id=request.step_run_id if choice == "skip" else None)


def _log_tail(step_run, attempt) -> str:
    lines = getattr(attempt, "log_lines", None) or getattr(step_run, "log_lines", None)
    if lines is None:
        return ""
    if hasattr(lines, "all"):
        lines = list(lines.all().order_by("-pk")[:50])[::-1]
        return "\n".join(str(getattr(line, "message", line)) for line in lines)
    return "\n".join(str(line) for line in list(lines)[-50:])


def connect() -> None:
    from apps.approvals.signals import checkpoint_decided
    from apps.runs import signals

    signals.step_failed.connect(on_step_failed, dispatch_uid="incidents.on_step_failed")
    signals.run_state_changed.connect(on_run_state_changed, dispatch_uid="incidents.on_run_state_changed")
    checkpoint_decided.connect(on_checkpoint_decided, dispatch_uid="incidents.on_checkpoint_decided")
