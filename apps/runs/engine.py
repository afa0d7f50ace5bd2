"""The execution engine: the only code that changes the state of runs, step runs and attempts.

State lives in the database; Celery carries out one step attempt at a time (apps.runs.tasks).
Every transition locks the run's row, re-checks the state, changes it, writes an audit event,
and enqueues the attempts that became ready with `transaction.on_commit`, so a message never
points at a row that was rolled back. A finishing worker may instead keep one ready successor
for itself (Handoff: created already claimed, no message). The per-step statements are plain
SQL in apps.runs.statements; everything else here uses the ORM.

Crash safety: a worker claims an attempt with a compare-and-swap update (queued -> running,
one winner) and may finish it only while it is still the claimant; a redelivered message for a
finished attempt does nothing; `sweep()` requeues attempts whose heartbeat went stale and
re-sends messages that were lost. Audit volume: run transitions and step outcomes (succeeded,
failed, skipped, gated, retried, compensated, requeued) are audited; the mechanical
queued -> running of each attempt is recorded on the attempt row (times, worker) instead.
"""

from __future__ import annotations

import operator
import os
import random
import socket
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from functools import reduce
from typing import Any, Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.audit.log import batched, flush, record
from apps.catalog.registry import Risk, get_step_type
from apps.runs import signals, statements
from apps.runs.models import (
    ACTIVE_RUN_STATES, AttemptKind, AttemptState, Run, RunState, SkipReason, StepAttempt, StepRun, StepState,
    Trigger,
)
from apps.runs.plan import OnFailure, Plan, StepPlan, plan_for
from apps.runs.signatures import error_signature
from apps.workflows.spec.templating import TemplateEvaluationError, evaluate_condition, render_params

# The hard time limit kills a step this long after its soft limit asked it to stop.
HARD_TIME_LIMIT_GRACE_SECONDS = 5
# Step states that still need work; FAILED is open too while it blocks the run (pause).
OPEN_STEP_STATES = (StepState.PENDING, StepState.WAITING_APPROVAL, StepState.QUEUED, StepState.RUNNING)
# States in which a step may no longer hold back what needs it (FAILED only with on_failure: continue).
SETTLED_IF_ALLOWED = (StepState.SUCCEEDED, StepState.SKIPPED, StepState.FAILED)
# Runs that may start new steps.
ADVANCING_RUN_STATES = (RunState.RUNNING, RunState.WAITING)
RETRYING_RUN_STATES = (RunState.RUNNING, RunState.WAITING, RunState.PAUSED)
SWEEP_BATCH = 500


class EngineError(Exception):
    """A request the engine refuses; the message says what to do instead."""


class TransitionNotAllowed(EngineError):
    """The run or step is not in a state that allows this action."""


class CheckpointRequired(TransitionNotAllowed):
    """A paused run's failure is decided only at its checkpoint (apps.approvals)."""


class InvalidInputs(EngineError):
    """The inputs given to a run do not match the workflow's declared inputs."""


@dataclass(frozen=True)
class ClaimedAttempt:
    """What a worker needs to carry out an attempt it has claimed."""

    attempt_id: int
    step_run_id: int
    run_id: int
    step_id: str
    kind: str
    number: int
    step_type: str
    params: dict
    idempotency_key: str
    timeout_seconds: int
    worker: str
    queue: str = "steps"


@dataclass
class AttemptOutcome:
    """How an attempt ended, as the worker saw it."""

    output: Any = None
    output_artifact: str = ""
    error_type: str = ""
    error_message: str = ""
    permanent: bool = False
    duration_ms: int | None = None
    records_in: int = 0
    records_out: int = 0
    records_rejected: int = 0
    log_lines_dropped: int = 0

    @property
    def failed(self) -> bool:
        return bool(self.error_type)


@dataclass
class Handoff:
    """A finishing worker's offer to run one successor itself instead of sending it through the
    broker: the first attempt made ready without delay on `queue` whose timeout fits in
    `max_timeout` is created already claimed by `worker` (in the same transaction), and no
    message is sent for it. If the worker dies, the attempt's heartbeat goes stale and the
    sweeper requeues it, as for any worker lost mid-step."""

    queue: str
    max_timeout: float
    worker: str
    kept: ClaimedAttempt | None = None

    def wants(self, queue: str, timeout: int, countdown: float) -> bool:
        # Not from inside a savepoint (a signal receiver's): it could roll back while the run commits.
        return (self.kept is None and not countdown and queue == self.queue and timeout <= self.max_timeout
                and not transaction.get_connection().savepoint_ids)


_handoff: ContextVar[Handoff | None] = ContextVar("flowdeck_handoff", default=None)


@dataclass
class SweepReport:
    requeued: int = 0
    timed_out: int = 0
    resent: int = 0
    runs_started: int = 0


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --- Starting runs -----------------------------------------------------------------------------


@batched()
def start_run(actor, version, *, inputs: dict | None = None, trigger: str = Trigger.MANUAL,
              trigger_detail: dict | None = None) -> Run:
    """Create a run of `version` and start it, or leave it queued when the workflow is at its
    concurrency limit (it starts when a running one ends). Raises InvalidInputs."""
    plan = plan_for(version.pk)
    return _create_run(actor, version, plan, _resolve_inputs(plan, inputs or {}), trigger, trigger_detail or {})


@batched()
def rerun_from_failure(actor, run: Run) -> Run:
    """A new run of the same version and inputs that keeps the outputs of the steps that
    succeeded (and were not compensated) and runs the rest."""
    run = _lock_run(run.pk)
    if run.state not in (RunState.FAILED, RunState.CANCELLED):
        raise TransitionNotAllowed(
            f"Run {run.pk} is {run.state}; only a failed or cancelled run can be re-run from its failure.")
    kept = {step.step_id: step for step in run.step_runs.filter(state=StepState.SUCCEEDED)}
    return _create_run(actor, run.version, plan_for(run.version_id), run.inputs, Trigger.MANUAL,
                       {"rerun_of": run.pk}, rerun_of=run, kept=kept)


def _create_run(actor, version, plan: Plan, inputs: dict, trigger: str, trigger_detail: dict, *,
                rerun_of: Run | None = None, kept: dict[str, StepRun] | None = None) -> Run:
    kept = kept or {}
    run = Run.objects.create(
        workflow_id=version.workflow_id, version=version, team_id=version.workflow.team_id, inputs=inputs,
        trigger=trigger, trigger_detail=trigger_detail, started_by=actor, rerun_of=rerun_of,
    )
    StepRun.objects.bulk_create([
        StepRun(run=run, step_id=step.id, position=step.position, step_type=step.type,
                **({"state": StepState.SUCCEEDED, "output": kept[step.id].output, "reused_from": kept[step.id],
                    "started_at": kept[step.id].started_at, "finished_at": kept[step.id].finished_at}
                   if step.id in kept else {}))
        for step in plan.steps.values()
    ])
    run = Run.objects.select_related("team").get(pk=run.pk)
    record(actor, "run.created", run, after={
        "workflow": plan.name, "version": version.number, "trigger": trigger, "rerun_of": rerun_of and rerun_of.pk,
    })
    if plan.concurrency is None or _active_runs_locked(run.workflow_id) < plan.concurrency:
        _begin_run(run, plan, actor)
    return run


def _resolve_inputs(plan: Plan, given: dict) -> dict:
    unknown = sorted(set(given) - set(plan.inputs))
    if unknown:
        raise InvalidInputs(f"Unknown input(s) {', '.join(unknown)}: the workflow declares "
                            f"{', '.join(sorted(plan.inputs)) or 'no inputs'}.")
    resolved, missing = {}, []
    for name, declared in plan.inputs.items():
        if name in given:
            resolved[name] = given[name]
        elif declared.get("required") and declared.get("default") is None:
            missing.append(name)
        else:
            resolved[name] = declared.get("default")
    if missing:
        raise InvalidInputs(f"Missing required input(s): {', '.join(missing)}. Give a value for each.")
    return resolved


def _active_runs_locked(workflow_id: int) -> int:
    """Count the workflow's active runs while holding its row, so two starts cannot both fit."""
    from apps.workflows.models import Workflow

    Workflow.objects.select_for_update().filter(pk=workflow_id).values_list("pk").first()
    return Run.objects.filter(workflow_id=workflow_id, state__in=ACTIVE_RUN_STATES).count()


def _begin_run(run: Run, plan: Plan, actor) -> None:
    run.started_at = timezone.now()
    _set_run_state(run, RunState.RUNNING, actor, extra_fields=["started_at"])
    _advance(run, plan, [step.id for step in plan.steps.values()], actor)
    _settle_run(run, plan, actor)


def _start_queued_runs(workflow_id: int) -> int:
    """Start the oldest queued runs of a workflow while its concurrency allows."""
    active = _active_runs_locked(workflow_id)
    started = 0
    for run in Run.objects.select_related("team").filter(workflow_id=workflow_id, state=RunState.QUEUED) \
            .order_by("created_at", "pk"):
        plan = plan_for(run.version_id)
        if plan.concurrency is not None and active >= plan.concurrency:
            break
        _begin_run(run, plan, None)
        active += 1
        started += 1
    return started


# --- Locking and transitions ---------------------------------------------------------------------


def _lock_run(run_id: int) -> Run:
    return statements.lock_run(run_id)


def _set_run_state(run: Run, state: str, actor, *, summary: str | None = None, extra_fields=(),
                   audit_detail: dict | None = None) -> None:
    before = run.state
    if before == state:
        return
    run.state = state
    fields = ["state", *extra_fields]
    if summary is not None:
        run.failure_summary = summary[:2000]
        fields.append("failure_summary")
    if run.is_finished:
        run.finished_at = timezone.now()
        fields.append("finished_at")
    run.save(update_fields=fields)
    record(actor, f"run.{state}", run, before={"state": before},
           after={"state": state, **({"summary": run.failure_summary} if summary else {}), **(audit_detail or {})})
    _announce(signals.run_state_changed, sender=Run, run=run, before=before, after=state, actor=actor)
    if before in ACTIVE_RUN_STATES and run.is_finished and plan_for(run.version_id).concurrency is not None:
        _start_queued_runs(run.workflow_id)


def _announce(signal, **kwargs) -> None:
    # The engine's buffered audit events go first, so the chain keeps the order things happened in.
    flush()
    signal.send(**kwargs)


def _audit_step(actor, run: Run, step_run_id: int, step_id: str, action: str, after: dict | None = None) -> None:
    record(actor, f"step.{action}", object_type="runs.steprun", object_id=step_run_id, team=run.team,
           after={"run": run.pk, "step": step_id, **(after or {})})


def _load_steps(run: Run, step_ids: Iterable[str]) -> dict[str, StepRun]:
    return statements.load_steps(run.pk, step_ids)


# --- Advancing: which steps start --------------------------------------------------------------


def _settled(plan: Plan, step_id: str, state: str) -> bool:
    """True when a step no longer holds back the steps that need it."""
    if state in (StepState.SUCCEEDED, StepState.SKIPPED):
        return True
    return state == StepState.FAILED and plan.steps[step_id].on_failure == OnFailure.CONTINUE


def _advance(run: Run, plan: Plan, candidates: Iterable[str], actor, known: dict[str, str] | None = None) -> bool:
    """Start every pending candidate whose needs are settled; skip what `when` or skipped
    upstreams rule out, following skips downstream. `known` maps step ids to the states the caller
    just gave them, so they are not read back. Returns True when the run certainly has work left:
    an attempt was queued, or a candidate still waits for needs that are not settled yet."""
    worklist = list(dict.fromkeys(candidates))
    rows = _load_steps(run, worklist)
    known = known or {}
    work_left = False
    while worklist and run.state in ADVANCING_RUN_STATES:
        step = plan.steps[worklist.pop(0)]
        row = rows[step.id]
        if row.state != StepState.PENDING:
            continue
        upstream_skipped = _needs_settled(run, plan, step, rows, known)
        if upstream_skipped is None:
            work_left = True
            continue
        if upstream_skipped:
            _skip(run, row, SkipReason.UPSTREAM_SKIPPED, actor)
        else:
            started = _start_step(run, plan, step, row, actor)
            if started is None:
                continue
            work_left |= started
            if row.state not in (StepState.SKIPPED, StepState.FAILED):
                continue
        follow = [sid for sid in step.dependents if sid not in rows or rows[sid].state == StepState.PENDING]
        rows.update(_load_steps(run, set(follow) - set(rows)))
        worklist.extend(follow)
    return work_left


def _needs_settled(run: Run, plan: Plan, step: StepPlan, rows: dict[str, StepRun],
                   known: dict[str, str]) -> bool | None:
    """None while a need of `step` is unsettled; else whether every need was skipped (not by an
    operator), which skips `step` too. Needs not in hand are checked with EXISTS queries over
    their positions, so a fan-in costs one small query per finished step, not a read of them all."""
    in_hand = {need: (rows[need].state, rows[need].skip_reason) if need in rows else (known[need], "")
               for need in step.needs if need in rows or need in known}
    if not all(_settled(plan, need, state) for need, (state, _) in in_hand.items()):
        return None
    all_in_hand = len(in_hand) == len(step.needs)
    if not all_in_hand:
        if statements.any_step_open(run.pk, step.needs_at, SETTLED_IF_ALLOWED):
            return None
        failed = _need_rows(run, step).filter(state=StepState.FAILED).values_list("step_id", flat=True)
        if not all(_settled(plan, need, StepState.FAILED) for need in failed):
            return None
    if not step.needs or any(state != StepState.SKIPPED or reason == SkipReason.OPERATOR
                             for state, reason in in_hand.values()):
        return False
    return all_in_hand or not _need_rows(run, step).filter(
        ~Q(state=StepState.SKIPPED) | Q(skip_reason=SkipReason.OPERATOR)).exists()


def _need_rows(run: Run, step: StepPlan):
    return StepRun.objects.filter(run=run).filter(
        reduce(operator.or_, (Q(position__range=span) for span in step.needs_at)))


def _skip(run: Run, row: StepRun, reason: str, actor, output=None, checkpoint: int | None = None) -> None:
    row.state, row.skip_reason, row.finished_at = StepState.SKIPPED, reason, timezone.now()
    row.output = output
    row.save(update_fields=["state", "skip_reason", "finished_at", "output"])
    _audit_step(actor, run, row.pk, row.step_id, "skipped",
                {"reason": reason, **({"checkpoint": checkpoint} if checkpoint else {})})


def _start_step(run: Run, plan: Plan, step: StepPlan, row: StepRun, actor) -> bool | None:
    """Gate, skip, fail (bad template) or queue a ready step. True when an attempt was queued;
    None when the step failed and the run stopped advancing."""
    try:
        context = _template_context(run, plan, step.reads_steps)
        if step.when and not evaluate_condition(step.when, context):
            _skip(run, row, SkipReason.CONDITION, actor)
            return False
        step_type = get_step_type(step.type)
        if step_type is None:
            raise _MissingStepType(step.type)
        if step.approval or step_type.risk == Risk.HIGH:
            _gate(run, row, step, actor)
            return False
        params = {**render_params(step.params, context), **(row.params_override or {})}
    except (TemplateEvaluationError, _MissingStepType) as exc:
        error_type = "TemplateError" if isinstance(exc, TemplateEvaluationError) else "UnknownStepType"
        _fail_step(run, plan, row, error_type, str(exc), actor)
        return None if run.state not in ADVANCING_RUN_STATES else False
    _queue_attempt(row, step, AttemptKind.STEP, row.attempt + 1, step.type, step.queue or step_type.queue,
                   params, step.timeout or step_type.timeout_seconds)
    return True


class _MissingStepType(Exception):
    def __init__(self, name: str):
        super().__init__(f"Step type {name!r} is not installed on this Flowdeck: ask a platform admin to install "
                         f"it, or change the step's type.")


def _gate(run: Run, row: StepRun, step: StepPlan, actor) -> None:
    row.state = StepState.WAITING_APPROVAL
    row.save(update_fields=["state"])
    _audit_step(actor, run, row.pk, row.step_id, "waiting_approval", {"approval": step.approval})
    if run.state == RunState.RUNNING:
        _set_run_state(run, RunState.WAITING, actor)
    _announce(signals.step_waiting_approval, sender=StepRun, step_run=StepRun.objects.get(pk=row.pk), run=run,
              approval=step.approval)


def _template_context(run: Run, plan: Plan, reads_steps: frozenset[str] | None) -> dict:
    steps: dict[str, dict] = {}
    if reads_steps is None or reads_steps:
        rows = StepRun.objects.filter(run=run)
        if reads_steps is not None:
            rows = rows.filter(step_id__in=list(reads_steps))
        steps = {sid: {"output": output, "state": state}
                 for sid, output, state in rows.values_list("step_id", "output", "state")}
    return {
        "inputs": run.inputs,
        "steps": steps,
        "run": {"id": run.pk, "workflow": plan.name, "started_at": run.started_at.isoformat()},
    }


def _queue_attempt(row: StepRun, step: StepPlan, kind: str, number: int, type_name: str, queue: str,
                   params: dict, timeout: int, countdown: float = 0) -> StepAttempt:
    now = timezone.now()
    handoff = _handoff.get()
    keep = handoff is not None and handoff.wants(queue, timeout, countdown)
    attempt = statements.queue_attempt(
        row.pk, run_id=row.run_id, step_id=step.id, kind=kind, number=number, step_type=type_name, queue=queue,
        params=params, timeout=timeout, now=now, not_before=now + timedelta(seconds=countdown),
        claimed_by=handoff.worker if keep else "")
    if kind == AttemptKind.STEP:
        row.state, row.attempt = StepState.RUNNING if keep else StepState.QUEUED, number
    if keep:
        handoff.kept = ClaimedAttempt(
            attempt_id=attempt.pk, step_run_id=row.pk, run_id=row.run_id, step_id=step.id, kind=kind, number=number,
            step_type=type_name, params=params, idempotency_key=attempt.idempotency_key, timeout_seconds=timeout,
            worker=handoff.worker, queue=queue)
    else:
        _send_on_commit(attempt.pk, queue, timeout, countdown)
    return attempt


def _send_on_commit(attempt_id: int, queue: str, timeout: int, countdown: float = 0) -> None:
    def send():
        from apps.runs.tasks import run_attempt

        # The worker enforces `timeout` itself (apps.runs.tasks); Celery's limits are the backstop
        # and leave room for the successors the worker may keep (Handoff).
        soft_limit = timeout + settings.FLOWDECK_HANDOFF_SECONDS
        run_attempt.apply_async(args=[attempt_id], queue=queue, countdown=countdown or None,
                                soft_time_limit=soft_limit, time_limit=soft_limit + HARD_TIME_LIMIT_GRACE_SECONDS)

    transaction.on_commit(send)


def _settle_run(run: Run, plan: Plan, actor) -> None:
    """Bring the run's state in line with its steps: done, waiting for a person, or blocked."""
    if run.state not in ADVANCING_RUN_STATES:
        return
    # Counted in the database: a wide fan-out would otherwise read every open step at each step's end.
    counts = Counter(dict(StepRun.objects.filter(run=run, state__in=(*OPEN_STEP_STATES, StepState.FAILED))
                          .order_by().values_list("state").annotate(Count("pk"))))
    failed = StepRun.objects.filter(run=run, state=StepState.FAILED).values_list("step_id", flat=True) \
        if counts[StepState.FAILED] else []
    blocking = [sid for sid in failed if plan.steps[sid].on_failure != OnFailure.CONTINUE]
    if blocking and not (counts[StepState.QUEUED] or counts[StepState.RUNNING]):
        _set_run_state(run, RunState.PAUSED, actor, summary=f"Step {blocking[0]} failed and waits for a decision.")
    elif not blocking and not any(counts[s] for s in OPEN_STEP_STATES):
        _set_run_state(run, RunState.SUCCEEDED, actor, summary="")
    elif counts[StepState.WAITING_APPROVAL]:
        _set_run_state(run, RunState.WAITING, actor)
    else:
        _set_run_state(run, RunState.RUNNING, actor)


# --- Failure policy and compensation --------------------------------------------------------------


def _fail_step(run: Run, plan: Plan, row: StepRun, error_type: str, message: str, actor) -> None:
    """Record a step's final failure and apply its `on_failure`."""
    step = plan.steps[row.step_id]
    now = timezone.now()
    StepRun.objects.filter(pk=row.pk).update(state=StepState.FAILED, error_type=error_type,
                                             error_message=message, finished_at=now)
    row.state, row.finished_at = StepState.FAILED, now
    _audit_step(actor, run, row.pk, row.step_id, "failed", {"error_type": error_type, "message": message[:500],
                                                             "on_failure": step.on_failure})
    summary = f"Step {row.step_id} failed: {error_type}: {message}"
    if step.on_failure == OnFailure.PAUSE and run.state in ADVANCING_RUN_STATES:
        _set_run_state(run, RunState.PAUSED, actor, summary=summary)
    elif step.on_failure == OnFailure.FAIL and run.state in ADVANCING_RUN_STATES:
        _cancel_open_steps(run)
        _compensate_or_finish(run, plan, actor, summary)
    _announce(signals.step_failed, sender=StepRun, step_run=StepRun.objects.get(pk=row.pk), run=run,
              attempt=StepAttempt.objects.filter(step_run_id=row.pk, kind=AttemptKind.STEP).last(),
              error_type=error_type, error_message=message, compensation=False)


def _cancel_open_steps(run: Run) -> list[str]:
    now = timezone.now()
    StepAttempt.objects.filter(step_run__run=run, state__in=(AttemptState.QUEUED, AttemptState.RUNNING)) \
        .update(state=AttemptState.CANCELLED, ended_at=now)
    open_steps = list(StepRun.objects.filter(run=run, state__in=OPEN_STEP_STATES).values_list("step_id", flat=True))
    StepRun.objects.filter(run=run, state__in=OPEN_STEP_STATES).update(state=StepState.CANCELLED, finished_at=now)
    return open_steps


def _compensate_or_finish(run: Run, plan: Plan, actor, summary: str) -> None:
    """Queue the next compensation (reverse order of completion), or end the run failed."""
    # Steps a rerun kept are undone too: their effects are still in place.
    done = [row for row in StepRun.objects.filter(run=run, state=StepState.SUCCEEDED)
            .order_by("-finished_at", "-pk") if plan.steps[row.step_id].compensate]
    if not done:
        _set_run_state(run, RunState.FAILED, actor, summary=summary)
        return
    _set_run_state(run, RunState.COMPENSATING, actor, summary=summary)
    _queue_compensation(run, plan, done[0], number=1)


def _queue_compensation(run: Run, plan: Plan, row: StepRun, number: int, countdown: float = 0) -> None:
    step = plan.steps[row.step_id]
    undo = step.compensate
    step_type = get_step_type(undo["type"])
    if step_type is None:
        raise EngineError(f"Compensation type {undo['type']!r} of step {step.id} is not installed.")
    params = render_params(undo.get("with") or {}, _template_context(run, plan, step.reads_steps))
    _queue_attempt(row, step, AttemptKind.COMPENSATION, number, undo["type"], step_type.queue, params,
                   step_type.timeout_seconds, countdown)


# --- The worker's side: claim, heartbeat, finish ---------------------------------------------------


def claim_attempt(attempt_id: int, worker: str) -> ClaimedAttempt | None:
    """Claim a queued attempt for `worker`; None when another claimant won or it already ended.

    A redelivered message whose claimant died on this host (SIGKILL, OOM) takes the attempt over
    at once instead of waiting for the sweeper. No transaction: the claim is one statement, and a
    worker dying before the step run is marked running leaves it queued, which the sweeper's
    requeue expects anyway."""
    now = timezone.now()
    found = statements.claim(attempt_id, worker, now)
    if found is not None:
        step_run_id, kind, number, step_type, params, idempotency_key, timeout, queue, run_id, step_id = found
        return ClaimedAttempt(attempt_id=attempt_id, step_run_id=step_run_id, run_id=run_id, step_id=step_id,
                              kind=kind, number=number, step_type=step_type, params=params,
                              idempotency_key=idempotency_key, timeout_seconds=timeout, worker=worker, queue=queue)
    if not _take_over_from_dead_local_worker(attempt_id, worker, now):
        return None
    claimed = _claimed_from(StepAttempt.objects.select_related("step_run").get(pk=attempt_id))
    if claimed.kind == AttemptKind.STEP:
        StepRun.objects.filter(pk=claimed.step_run_id, state=StepState.QUEUED).update(
            state=StepState.RUNNING, started_at=Coalesce("started_at", Value(now)))
    return claimed


def _take_over_from_dead_local_worker(attempt_id: int, worker: str, now) -> bool:
    holder = StepAttempt.objects.filter(pk=attempt_id, state=AttemptState.RUNNING) \
        .values_list("worker", flat=True).first()
    if not holder:
        return False
    host, _, pid = holder.rpartition(":")
    if host != worker.rpartition(":")[0] or holder == worker or not pid.isdigit() or _pid_alive(int(pid)):
        return False
    return bool(StepAttempt.objects.filter(pk=attempt_id, state=AttemptState.RUNNING, worker=holder).update(
        worker=worker, started_at=now, heartbeat_at=now, deliveries=F("deliveries") + 1))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def heartbeat(claimed: ClaimedAttempt, progress: dict | None = None) -> bool:
    """Note that the attempt is alive; False when it is no longer ours (cancelled, taken over)."""
    alive = StepAttempt.objects.filter(pk=claimed.attempt_id, state=AttemptState.RUNNING,
                                       worker=claimed.worker).update(heartbeat_at=timezone.now())
    if alive and progress is not None and claimed.kind == AttemptKind.STEP:
        StepRun.objects.filter(pk=claimed.step_run_id).update(progress=progress)
    return bool(alive)


def finish_attempt(claimed: ClaimedAttempt, outcome: AttemptOutcome, handoff: Handoff | None = None) -> bool:
    """Record how an attempt ended and move the run on. False when the result was discarded
    because the attempt was no longer ours (cancelled, finished, or taken over after a crash).
    With `handoff`, one successor this queues may be kept for the caller to run (see Handoff)."""
    token = _handoff.set(handoff)
    try:
        return _finish_attempt(claimed, outcome)
    finally:
        _handoff.reset(token)


def _finish_attempt(claimed: ClaimedAttempt, outcome: AttemptOutcome) -> bool:
    now = timezone.now()
    with batched():
        # A step's success is recorded on its step run at once.
        succeeded = claimed.kind == AttemptKind.STEP and not outcome.failed
        run, ours = statements.lock_run_and_end_attempt(
            claimed.run_id, claimed.attempt_id, claimed.worker, now, failed=outcome.failed, output=outcome.output,
            output_artifact=outcome.output_artifact, error_type=outcome.error_type[:200],
            error_message=outcome.error_message,
            error_signature=error_signature(outcome.error_type, outcome.error_message) if outcome.failed else "",
            duration_ms=outcome.duration_ms,
            records=(outcome.records_in, outcome.records_out, outcome.records_rejected),
            log_lines_dropped=outcome.log_lines_dropped,
            succeeded_step_run_id=claimed.step_run_id if succeeded else None)
        if not ours:
            return False
        plan = plan_for(run.version_id)
        if claimed.kind == AttemptKind.COMPENSATION:
            _compensation_ended(run, plan, claimed, outcome)
        elif outcome.failed:
            _step_attempt_failed(run, plan, claimed, outcome)
        else:
            _step_succeeded(run, plan, claimed)
    return True


def _step_succeeded(run: Run, plan: Plan, claimed: ClaimedAttempt) -> None:
    _audit_step(None, run, claimed.step_run_id, claimed.step_id, "succeeded", {"attempt": claimed.number})
    if run.state not in ADVANCING_RUN_STATES:
        return
    work_left = _advance(run, plan, plan.steps[claimed.step_id].dependents, None,
                         known={claimed.step_id: StepState.SUCCEEDED})
    # A success only changes a running run's state when it was the last open step: with a
    # successor queued or still waiting for its other needs, there is nothing to count.
    if not (work_left and run.state == RunState.RUNNING):
        _settle_run(run, plan, None)


def _step_attempt_failed(run: Run, plan: Plan, claimed: ClaimedAttempt, outcome: AttemptOutcome) -> None:
    step = plan.steps[claimed.step_id]
    row = StepRun.objects.get(pk=claimed.step_run_id)
    retries_used = claimed.number - row.retry_budget_from
    # Retries are mechanical: they go on even while the run is paused by another branch.
    if not outcome.permanent and retries_used < step.retries["count"] and run.state in RETRYING_RUN_STATES:
        delay = retry_delay(step.retries, retries_used + 1)
        step_type = get_step_type(step.type)
        _queue_attempt(row, step, AttemptKind.STEP, claimed.number + 1, claimed.step_type,
                       step.queue or (step_type.queue if step_type else "steps"), claimed.params,
                       claimed.timeout_seconds, countdown=delay)
        _audit_step(None, run, row.pk, row.step_id, "retry_scheduled", {
            "attempt": claimed.number + 1, "delay_seconds": round(delay, 3), "error_type": outcome.error_type})
        return
    _fail_step(run, plan, row, outcome.error_type, outcome.error_message, None)
    if step.on_failure == OnFailure.CONTINUE and run.state in ADVANCING_RUN_STATES:
        _advance(run, plan, step.dependents, None, known={step.id: StepState.FAILED})
    _settle_run(run, plan, None)


def retry_delay(retries: dict, retry_number: int) -> float:
    """Seconds before retry `retry_number` (1 for the first retry)."""
    delay = float(retries.get("delay", 0))
    if retries.get("backoff") == "exponential":
        delay *= 2 ** (retry_number - 1)
    delay = min(delay, float(retries.get("max_delay") or delay))
    if retries.get("jitter") and delay:
        # Equal jitter: never less than half the delay, so backoff still backs off.
        delay = delay / 2 + random.uniform(0, delay / 2)
    return delay


def _compensation_ended(run: Run, plan: Plan, claimed: ClaimedAttempt, outcome: AttemptOutcome) -> None:
    row = StepRun.objects.get(pk=claimed.step_run_id)
    if run.state != RunState.COMPENSATING:
        return
    if not outcome.failed:
        row.state = StepState.COMPENSATED
        row.save(update_fields=["state"])
        _audit_step(None, run, row.pk, row.step_id, "compensated", {"attempt": claimed.number})
        _compensate_or_finish(run, plan, None, run.failure_summary)
        return
    step = plan.steps[row.step_id]
    if not outcome.permanent and claimed.number <= step.retries["count"]:
        _queue_compensation(run, plan, row, claimed.number + 1, retry_delay(step.retries, claimed.number))
        return
    message = f"Compensation of step {row.step_id} failed: {outcome.error_type}: {outcome.error_message}"
    _audit_step(None, run, row.pk, row.step_id, "compensation_failed", {"error_type": outcome.error_type})
    _set_run_state(run, RunState.FAILED, None, summary=f"{message}. Undo what is left by hand.")
    _announce(signals.step_failed, sender=StepRun, step_run=row, run=run,
              attempt=StepAttempt.objects.get(pk=claimed.attempt_id), error_type=outcome.error_type,
              error_message=outcome.error_message, compensation=True)


# --- People's decisions -------------------------------------------------------------------------------


def _lock_step(step_run: StepRun) -> tuple[Run, StepRun]:
    run = _lock_run(step_run.run_id)
    return run, StepRun.objects.get(pk=step_run.pk)


@batched()
def retry_step(actor, step_run: StepRun, params_override: dict | None = None, *, checkpoint: int,
               approve_again: bool = False) -> StepAttempt | None:
    """Run a failed step of a paused run again (a fresh retry budget), optionally with some
    parameters replaced. Only a decision on the step's checkpoint calls this (`checkpoint` is its
    id, recorded in the audit event); with `approve_again` the step waits for a new approval of
    its edited parameters instead of being queued, and None is returned."""
    run, row = _lock_step(step_run)
    _require_paused_failure(run, row, "retried")
    plan = plan_for(run.version_id)
    step = plan.steps[row.step_id]
    step_type = get_step_type(step.type)
    if step_type is None:
        raise EngineError(f"Step type {step.type!r} is not installed: ask a platform admin, or skip the step.")
    if params_override is not None:
        row.params_override = params_override
    row.retry_budget_from = row.attempt + 1
    row.error_type = row.error_message = ""
    row.save(update_fields=["params_override", "retry_budget_from", "error_type", "error_message"])
    _set_run_state(run, RunState.RUNNING, actor)
    audit = {"checkpoint": checkpoint, "params_override": params_override}
    if approve_again:
        _audit_step(actor, run, row.pk, row.step_id, "retried", {**audit, "approve_again": True})
        _gate(run, row, step, actor)
        _resume(run, plan, actor)
        return None
    try:
        params = {**render_params(step.params, _template_context(run, plan, step.reads_steps)),
                  **(row.params_override or {})}
    except TemplateEvaluationError as exc:
        raise EngineError(f"The step's parameters cannot be rendered ({exc}): give every parameter in "
                          f"the override, or skip the step.") from None
    attempt = _queue_attempt(row, step, AttemptKind.STEP, row.attempt + 1, step.type, step.queue or step_type.queue,
                             params, step.timeout or step_type.timeout_seconds)
    _audit_step(actor, run, row.pk, row.step_id, "retried", {**audit, "attempt": attempt.number})
    _resume(run, plan, actor)
    return attempt


@batched()
def skip_step(actor, step_run: StepRun, output: Any = None, *, checkpoint: int) -> None:
    """Mark a failed step of a paused run as skipped (its dependents run, seeing `output`). Only a
    decision on the step's checkpoint calls this (`checkpoint` is its id)."""
    run, row = _lock_step(step_run)
    _require_paused_failure(run, row, "skipped")
    plan = plan_for(run.version_id)
    _set_run_state(run, RunState.RUNNING, actor)
    _skip(run, row, SkipReason.OPERATOR, actor, output=output, checkpoint=checkpoint)
    _resume(run, plan, actor)


def _require_paused_failure(run: Run, row: StepRun, action: str) -> None:
    if run.state != RunState.PAUSED or row.state != StepState.FAILED:
        raise TransitionNotAllowed(
            f"Step {row.step_id} is {row.get_state_display().lower()} in a {run.state} run; only a failed step "
            f"of a paused run can be {action}.")


def _resume(run: Run, plan: Plan, actor) -> None:
    pending = StepRun.objects.filter(run=run, state=StepState.PENDING).values_list("step_id", flat=True)
    _advance(run, plan, list(pending), actor)
    _settle_run(run, plan, actor)


@batched()
def release_gate(step_run: StepRun, *, actor=None) -> StepAttempt | None:
    """An approval was granted: queue the gated step. When its parameters cannot be rendered the
    step fails instead (its `on_failure` applies) and None is returned: the approval still stands."""
    run, row = _lock_step(step_run)
    if row.state != StepState.WAITING_APPROVAL or run.state not in ADVANCING_RUN_STATES:
        raise TransitionNotAllowed(f"Step {row.step_id} is not waiting for approval in an active run "
                                   f"(step {row.state}, run {run.state}); nothing to release.")
    plan = plan_for(run.version_id)
    step = plan.steps[row.step_id]
    step_type = get_step_type(step.type)
    try:
        params = {**render_params(step.params, _template_context(run, plan, step.reads_steps)),
                  **(row.params_override or {})}
    except TemplateEvaluationError as exc:
        # Recorded, not raised: raising would roll the failure back and leave the step waiting.
        _fail_step(run, plan, row, "TemplateError", f"The approved step cannot start: {exc}", actor)
        _settle_run(run, plan, actor)
        return None
    _audit_step(actor, run, row.pk, row.step_id, "released")
    attempt = _queue_attempt(row, step, AttemptKind.STEP, row.attempt + 1, step.type,
                             step.queue or step_type.queue, params, step.timeout or step_type.timeout_seconds)
    _settle_run(run, plan, actor)
    return attempt


@batched()
def reject_gate(step_run: StepRun, reason: str, *, actor=None) -> None:
    """An approval was refused: the step fails (permanently) and its `on_failure` applies."""
    run, row = _lock_step(step_run)
    if row.state != StepState.WAITING_APPROVAL:
        raise TransitionNotAllowed(f"Step {row.step_id} is {row.state}, not waiting for approval; nothing to reject.")
    plan = plan_for(run.version_id)
    _fail_step(run, plan, row, "ApprovalRejected", f"Rejected: {reason}", actor)
    if plan.steps[row.step_id].on_failure == OnFailure.CONTINUE:
        _advance(run, plan, plan.steps[row.step_id].dependents, actor, known={row.step_id: StepState.FAILED})
    _settle_run(run, plan, actor)


@batched()
def cancel_run(actor, run: Run) -> None:
    """Stop a run: queued and waiting steps never start; running steps' results are discarded. A
    paused run waits for a decision at its checkpoint instead (abort ends it)."""
    run = _lock_run(run.pk)
    if run.is_finished:
        raise TransitionNotAllowed(f"Run {run.pk} already {run.state}; there is nothing to cancel.")
    if run.state == RunState.PAUSED:
        raise CheckpointRequired(f"Run {run.pk} is paused at a failed step: decide at its checkpoint instead "
                                 f"(abort ends the run), with a reason and a comment.")
    cancelled = _cancel_open_steps(run)
    _set_run_state(run, RunState.CANCELLED, actor, summary=f"Cancelled by {_who(actor)}.",
                   audit_detail={"cancelled_steps": cancelled})


@batched()
def abort_run(actor, run: Run, *, checkpoint: int | None = None) -> None:
    """End an unfinished run as failed without compensation. A paused run is aborted only by a
    decision on its checkpoint (`checkpoint` is its id)."""
    run = _lock_run(run.pk)
    _require_abortable(run, checkpoint)
    cancelled = _cancel_open_steps(run)
    _set_run_state(run, RunState.FAILED, actor, summary=f"Aborted by {_who(actor)}. {run.failure_summary}".strip(),
                   audit_detail={"cancelled_steps": cancelled, **({"checkpoint": checkpoint} if checkpoint else {})})


@batched()
def compensate_and_abort(actor, run: Run, *, checkpoint: int | None = None) -> None:
    """Stop a run and undo its completed steps (reverse order of completion); it ends failed. A
    paused run is compensated only by a decision on its checkpoint (`checkpoint` is its id)."""
    run = _lock_run(run.pk)
    _require_abortable(run, checkpoint)
    _cancel_open_steps(run)
    summary = f"Aborted with compensation by {_who(actor)}. {run.failure_summary}".strip()
    _compensate_or_finish(run, plan_for(run.version_id), actor, summary)


def _require_abortable(run: Run, checkpoint: int | None) -> None:
    if run.state not in (RunState.RUNNING, RunState.WAITING, RunState.PAUSED):
        raise TransitionNotAllowed(f"Run {run.pk} is {run.state}; only a running, waiting or paused run can be "
                                   f"aborted.")
    if run.state == RunState.PAUSED and checkpoint is None:
        raise CheckpointRequired(f"Run {run.pk} is paused at a failed step: decide at its checkpoint (retry, skip, "
                                 f"compensate or abort, with a reason and a comment) in the inbox.")


def _who(actor) -> str:
    return actor.get_username() if actor is not None else "the system"


# --- Recovery ------------------------------------------------------------------------------------------


def sweep(now=None) -> SweepReport:
    """Requeue attempts whose worker went silent, time out those past their hard limit, re-send
    messages that were lost, and start queued runs that have a free slot."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.FLOWDECK_STALE_AFTER_SECONDS)
    report = SweepReport()
    silent = StepAttempt.objects.filter(state=AttemptState.RUNNING, heartbeat_at__lt=stale_before) \
        .select_related("step_run")[:SWEEP_BATCH]
    for attempt in silent:
        deadline = attempt.started_at + timedelta(seconds=attempt.timeout_seconds + HARD_TIME_LIMIT_GRACE_SECONDS)
        if deadline < now:
            claimed = _claimed_from(attempt)
            report.timed_out += finish_attempt(claimed, AttemptOutcome(
                error_type="Timeout", error_message=f"The step ran past its timeout of {attempt.timeout_seconds}s "
                                                    f"and its worker stopped answering."))
        else:
            report.requeued += _requeue(attempt)
    lost = StepAttempt.objects.filter(state=AttemptState.QUEUED, queued_at__lt=stale_before,
                                      not_before__lt=stale_before).values_list("pk", "queue", "timeout_seconds",
                                                                               "queued_at")[:SWEEP_BATCH]
    for attempt_id, queue, timeout, queued_at in lost:
        with batched():
            if StepAttempt.objects.filter(pk=attempt_id, state=AttemptState.QUEUED, queued_at=queued_at) \
                    .update(queued_at=now):
                _send_on_commit(attempt_id, queue, timeout)
                report.resent += 1
    for workflow_id in set(Run.objects.filter(state=RunState.QUEUED).values_list("workflow_id", flat=True)):
        with batched():
            report.runs_started += _start_queued_runs(workflow_id)
    return report


def _claimed_from(attempt: StepAttempt) -> ClaimedAttempt:
    return ClaimedAttempt(
        attempt_id=attempt.pk, step_run_id=attempt.step_run_id, run_id=attempt.step_run.run_id,
        step_id=attempt.step_run.step_id, kind=attempt.kind, number=attempt.number, step_type=attempt.step_type,
        params=attempt.params, idempotency_key=attempt.idempotency_key, timeout_seconds=attempt.timeout_seconds,
        worker=attempt.worker, queue=attempt.queue,
    )


def _requeue(attempt: StepAttempt) -> bool:
    """Give a silent worker's attempt to another worker: same attempt, same idempotency key, so
    effects the lost worker already recorded are not repeated."""
    with batched():
        run = _lock_run(attempt.step_run.run_id)
        if not StepAttempt.objects.filter(pk=attempt.pk, state=AttemptState.RUNNING, worker=attempt.worker) \
                .update(state=AttemptState.QUEUED, queued_at=timezone.now(), worker=""):
            return False
        if attempt.kind == AttemptKind.STEP:
            StepRun.objects.filter(pk=attempt.step_run_id, state=StepState.RUNNING).update(state=StepState.QUEUED)
        _audit_step(None, run, attempt.step_run_id, attempt.step_run.step_id, "requeued", {
            "attempt": attempt.number, "lost_worker": attempt.worker})
        _send_on_commit(attempt.pk, attempt.queue, attempt.timeout_seconds)
    return True
