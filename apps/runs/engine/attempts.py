"""Building and queueing attempts: the one place that decides an attempt's parameters, queue and
timeout, and the template context its parameters are rendered against.

An attempt is queued in the engine's transaction and its message sent on commit, so a message
never points at a row that was rolled back; or, when the finishing worker offered to keep it
(contract.Handoff), it is created already claimed and no message is sent. The per-step SQL lives
in apps.runs.statements.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta

from apps.celery import app as celery_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.catalog.registry import get_step_type
from apps.runs import statements
from apps.runs.engine.contract import (
    HARD_TIME_LIMIT_GRACE_SECONDS, RUN_ATTEMPT_TASK, ClaimedAttempt, MissingStepType, current_handoff,
)
from apps.runs.models import AttemptKind, Run, StepAttempt, StepRun, StepState
from apps.workflows.plan import Plan, StepPlan
from apps.workflows.spec.templating import render_params


def template_context(run: Run, plan: Plan, reads_steps: frozenset[str] | None) -> dict:
    """What templates and conditions read: the run's inputs, the steps named in `reads_steps`
    (every step when None) with their output, state and gate decision, and the run itself."""
    steps: dict[str, dict] = {}
    if reads_steps is None or reads_steps:
        rows = StepRun.objects.filter(run=run)
        if reads_steps is not None:
            rows = rows.filter(step_id__in=list(reads_steps))
        steps = {sid: {"output": _with_decision_input(output, given), "state": state, "decision": decision}
                 for sid, output, state, decision, given
                 in rows.values_list("step_id", "output", "state", "decision", "decision_input")}
    return {
        "inputs": run.inputs,
        "steps": steps,
        "run": {"id": run.pk, "workflow": plan.name, "started_at": run.started_at.isoformat()},
    }


def _with_decision_input(output, given: dict | None):
    # What the approver filled in is part of the gate's output, over what the step itself returned.
    if not given or not isinstance(output, (dict, type(None))):
        return output
    return {**(output or {}), **given}


def step_params(run: Run, plan: Plan, step: StepPlan, row: StepRun, context: dict | None = None) -> dict:
    """What the next attempt of `row` receives: the step's parameters rendered against the run
    (its inputs and the upstream outputs as they are now), with the operator's overrides on top.
    The approval pages show the same, so an approver sees exactly what will run. Raises
    TemplateEvaluationError."""
    context = context if context is not None else template_context(run, plan, step.reads_steps)
    return {**render_params(step.params, context, step_id=step.id), **(row.params_override or {})}


def queue_step_attempt(run: Run, plan: Plan, step: StepPlan, row: StepRun, *, context: dict | None = None,
                       params: dict | None = None, countdown: float = 0) -> StepAttempt:
    """Queue the next attempt of `row`: its parameters rendered against the run (with the
    operator's overrides on top) unless `params` are given (a retry re-uses its attempt's), on
    the step's queue or its type's, with the step's timeout or its type's. Raises MissingStepType
    and TemplateEvaluationError."""
    step_type = get_step_type(step.type)
    if step_type is None:
        raise MissingStepType(step.type)
    if params is None:
        params = step_params(run, plan, step, row, context)
    return queue_attempt(plan, row, step, AttemptKind.STEP, row.attempt + 1, step.type,
                         step.queue or step_type.queue, params, step.timeout or step_type.timeout_seconds, countdown)


def queue_compensation(run: Run, plan: Plan, row: StepRun, number: int, countdown: float = 0) -> None:
    step = plan.steps[row.step_id]
    undo = step.compensate
    step_type = get_step_type(undo["type"])
    if step_type is None:
        raise MissingStepType(undo["type"])
    params = render_params(undo.get("with") or {}, template_context(run, plan, step.reads_steps), step_id=step.id)
    queue_attempt(plan, row, step, AttemptKind.COMPENSATION, number, undo["type"], step_type.queue, params,
                  step_type.timeout_seconds, countdown)


def queue_attempt(plan: Plan, row: StepRun, step: StepPlan, kind: str, number: int, type_name: str, queue: str,
                  params: dict, timeout: int, countdown: float = 0) -> StepAttempt:
    now = timezone.now()
    handoff = current_handoff.get()
    keep = handoff is not None and handoff.wants(queue, timeout, countdown)
    attempt = statements.new_attempt(
        row.pk, run_id=row.run_id, step_id=step.id, kind=kind, number=number, step_type=type_name, queue=queue,
        params=params, timeout=timeout, now=now, not_before=now + timedelta(seconds=countdown),
        claimed_by=handoff.worker if keep else "")
    if kind == AttemptKind.STEP:
        row.state, row.attempt = StepState.RUNNING if keep else StepState.QUEUED, number
    together = _queued_together.get()
    if together is not None and not keep:
        together.append((attempt, countdown))
        return attempt
    statements.insert_attempts([attempt])
    if keep:
        handoff.kept = ClaimedAttempt(
            attempt_id=attempt.pk, step_run_id=row.pk, run_id=row.run_id, step_id=step.id, kind=kind, number=number,
            step_type=type_name, params=params, idempotency_key=attempt.idempotency_key, timeout_seconds=timeout,
            worker=handoff.worker, queue=queue, claim=attempt.deliveries, version_id=plan.version_id)
    else:
        send_on_commit(attempt.pk, queue, timeout, countdown)
    return attempt


# The attempts queued inside `queued_together()` and not yet inserted, with their countdowns.
_queued_together: ContextVar[list[tuple[StepAttempt, float]] | None] = ContextVar("flowdeck_queued_together",
                                                                                   default=None)


@contextmanager
def queued_together():
    """Attempts queued inside the block (but one the finishing worker keeps) are inserted together
    when it ends, or at `insert_queued()`: a fan-out's successors in one statement. Until then they
    have no primary key, so the block calls `insert_queued()` before anything that reads attempts
    or changes step runs."""
    token = _queued_together.set([])
    try:
        yield
        insert_queued()
    finally:
        _queued_together.reset(token)


def insert_queued() -> None:
    """Insert the attempts queued so far inside `queued_together()`, and send their messages on commit."""
    together = _queued_together.get()
    if not together:
        return
    statements.insert_attempts([attempt for attempt, _ in together])
    for attempt, countdown in together:
        send_on_commit(attempt.pk, attempt.queue, attempt.timeout_seconds, countdown)
    together.clear()


def send_on_commit(attempt_id: int, queue: str, timeout: int, countdown: float = 0) -> None:
    def send():
        # The worker enforces `timeout` itself (apps.runs.tasks); Celery's limits are the backstop
        # and leave room for the successors the worker may keep (Handoff).
        soft_limit = timeout + settings.FLOWDECK_HANDOFF_SECONDS
        # By name, through a signature: the task module is imported by Celery, not by the engine,
        # and a signature of a registered task still honours task_always_eager (send_task does not).
        celery_app.signature(RUN_ATTEMPT_TASK, args=[attempt_id]).apply_async(
            queue=queue, countdown=countdown or None, soft_time_limit=soft_limit,
            time_limit=soft_limit + HARD_TIME_LIMIT_GRACE_SECONDS)

    transaction.on_commit(send)
