"""What people decide, carried out: retry or skip a failed step, release or reject a gated one,
cancel, abort or compensate a run. Each locks the run, checks the declared transition
(apps.runs.engine.transitions) under the lock, changes state and audits it.

Only apps.approvals calls the step decisions and ends a paused run: a paused run's failure is
decided at its checkpoint, with that app's permission table, reason code and comment. The
`checkpoint` argument is the id of that decision's request, recorded in the audit events.
"""

from __future__ import annotations

from typing import Any

from apps.audit.log import batched
from apps.runs.engine.advancing import (
    advance, audit_step, cancel_open_steps, compensate_or_finish, fail_step, fail_unstartable, gate, lock_run,
    set_run_state, settle_run, skip,
)
from apps.runs.engine.attempts import queue_step_attempt
from apps.runs.engine.contract import EngineError, MissingStepType
from apps.runs.engine.transitions import require, require_step
from apps.runs.models import Run, RunState, SkipReason, StepAttempt, StepRun, StepState
from apps.workflows.plan import APPROVED, REJECTED, OnFailure, OnReject, Plan, plan_for
from apps.workflows.spec.templating import TemplateEvaluationError


def _lock_step(step_run: StepRun) -> tuple[Run, StepRun]:
    run = lock_run(step_run.run_id)
    return run, StepRun.objects.get(pk=step_run.pk)


@batched()
def retry_step(actor, step_run: StepRun, params_override: dict | None = None, *, checkpoint: int,
               approve_again: bool = False) -> StepAttempt | None:
    """Run a failed step of a paused run again (a fresh retry budget), optionally with some
    parameters replaced. With `approve_again` the step waits for a new approval of its edited
    parameters instead of being queued, and None is returned."""
    run, row = _lock_step(step_run)
    require_step(run, row, "retry")
    plan = plan_for(run.version_id)
    step = plan.steps[row.step_id]
    if params_override is not None:
        row.params_override = params_override
    row.retry_budget_from = row.attempt + 1
    row.error_type = row.error_message = ""
    row.save(update_fields=["params_override", "retry_budget_from", "error_type", "error_message"])
    set_run_state(run, RunState.RUNNING, actor)
    audit = {"checkpoint": checkpoint, "params_override": params_override}
    if approve_again:
        audit_step(actor, run, row.pk, row.step_id, "retried", {**audit, "approve_again": True})
        gate(run, row, step, actor)
        _resume(run, plan, actor)
        return None
    try:
        attempt = queue_step_attempt(run, plan, step, row)
    except MissingStepType as missing:
        raise EngineError(f"{missing} Or skip the step.") from None
    except TemplateEvaluationError as exc:
        raise EngineError(f"The step's parameters cannot be rendered ({exc}): give every parameter in "
                          f"the override, or skip the step.") from None
    audit_step(actor, run, row.pk, row.step_id, "retried", {**audit, "attempt": attempt.number})
    _resume(run, plan, actor)
    return attempt


@batched()
def skip_step(actor, step_run: StepRun, output: Any = None, *, checkpoint: int) -> None:
    """Mark a failed step of a paused run as skipped (its dependents run, seeing `output`)."""
    run, row = _lock_step(step_run)
    require_step(run, row, "skip")
    plan = plan_for(run.version_id)
    set_run_state(run, RunState.RUNNING, actor)
    skip(run, row, SkipReason.OPERATOR, actor, output=output, checkpoint=checkpoint)
    _resume(run, plan, actor)


def _resume(run: Run, plan: Plan, actor) -> None:
    pending = StepRun.objects.filter(run=run, state=StepState.PENDING).values_list("step_id", flat=True)
    advance(run, plan, list(pending), actor)
    settle_run(run, plan, actor)


@batched()
def release_gate(step_run: StepRun, *, actor=None, decision: str = APPROVED,
                 decision_input: dict | None = None) -> StepAttempt | None:
    """An approval was granted: record its `decision` (approved, or the option chosen) and what the
    approver filled in, then queue the gated step. When it cannot start (its parameters cannot be
    rendered, its type is no longer installed) it fails instead (its `on_failure` applies) and
    None is returned: the approval still stands."""
    run, row = _lock_step(step_run)
    require_step(run, row, "release")
    plan = plan_for(run.version_id)
    step = plan.steps[row.step_id]
    row.decision, row.decision_input = decision, decision_input
    row.save(update_fields=["decision", "decision_input"])
    try:
        attempt = queue_step_attempt(run, plan, step, row)
    except (TemplateEvaluationError, MissingStepType) as exc:
        # Recorded, not raised: raising would roll the failure back and leave the step waiting.
        fail_unstartable(run, plan, row, exc, actor, prefix="The approved step cannot start: ")
        settle_run(run, plan, actor)
        return None
    audit_step(actor, run, row.pk, row.step_id, "released",
               {"decision": decision, **({"decision_input": decision_input} if decision_input else {})})
    settle_run(run, plan, actor)
    return attempt


# What a rejection does to the gated step, by its `on_reject`; fail applies its `on_failure`.
_REJECTED_SKIPS = {OnReject.SKIP: SkipReason.REJECTED, OnReject.CONTINUE: SkipReason.REJECTED_CONTINUE}


@batched()
def reject_gate(step_run: StepRun, reason: str, *, actor=None) -> None:
    """An approval was refused: by the gate's `on_reject`, the step fails for good (its
    `on_failure` applies), or is skipped with what needs it (skip), or is skipped while what
    needs it runs and reads `steps.<id>.decision == "rejected"` (continue)."""
    run, row = _lock_step(step_run)
    require_step(run, row, "reject")
    plan = plan_for(run.version_id)
    step = plan.steps[row.step_id]
    row.decision = REJECTED
    row.save(update_fields=["decision"])
    skip_reason = _REJECTED_SKIPS.get(step.gate.on_reject if step.gate else OnReject.FAIL)
    if skip_reason:
        skip(run, row, skip_reason, actor)
        # Not passed as known: whether a skip holds back what needs it depends on its reason.
        advance(run, plan, step.dependents, actor)
    else:
        fail_step(run, plan, row, "ApprovalRejected", f"Rejected: {reason}", actor)
        if step.on_failure == OnFailure.CONTINUE:
            advance(run, plan, step.dependents, actor, known={row.step_id: StepState.FAILED})
    settle_run(run, plan, actor)


@batched()
def cancel_run(actor, run: Run) -> None:
    """Stop a run: queued and waiting steps never start; running steps' results are discarded. A
    paused run waits for a decision at its checkpoint instead (abort ends it)."""
    run = lock_run(run.pk)
    require(run, "cancel")
    cancelled = cancel_open_steps(run)
    set_run_state(run, RunState.CANCELLED, actor, summary=f"Cancelled by {_who(actor)}.",
                  audit_detail={"cancelled_steps": cancelled})


@batched()
def abort_run(actor, run: Run, *, checkpoint: int | None = None) -> None:
    """End an unfinished run as failed without compensation."""
    run = lock_run(run.pk)
    require(run, "abort", checkpoint=checkpoint)
    cancelled = cancel_open_steps(run)
    set_run_state(run, RunState.FAILED, actor, summary=f"Aborted by {_who(actor)}. {run.failure_summary}".strip(),
                  audit_detail={"cancelled_steps": cancelled, **({"checkpoint": checkpoint} if checkpoint else {})})


@batched()
def compensate_and_abort(actor, run: Run, *, checkpoint: int | None = None) -> None:
    """Stop a run and undo its completed steps (reverse order of completion); it ends failed."""
    run = lock_run(run.pk)
    require(run, "compensate", checkpoint=checkpoint)
    cancel_open_steps(run)
    summary = f"Aborted with compensation by {_who(actor)}. {run.failure_summary}".strip()
    compensate_or_finish(run, plan_for(run.version_id), actor, summary)


def _who(actor) -> str:
    return actor.get_username() if actor is not None else "the system"
