"""Advancing a run: which steps start, skip, wait for a person or fail, what state the run is in
afterwards, the failure policy and compensation, and starting queued runs as slots free up.

Every function here runs with the run's row locked (`lock_run`) inside the engine's transaction
(`all_wait_for_other_needs`, which changes nothing, also under the shared lock of a parallel success);
a state change goes through `set_run_state`, which refuses moves the state machine
(apps.runs.engine.transitions) does not declare, audits it and sends the run_state_changed signal
(its two halves, `move` and `moved`, also serve a new run inserted already running).
"""

from __future__ import annotations

import operator
from collections import Counter
from functools import reduce
from typing import Iterable

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from apps.audit.log import flush, record
from apps.catalog.registry import Risk, get_step_type
from apps.logging import get_logger
from apps.runs import signals, statements
from apps.runs.engine.attempts import (
    insert_queued,
    queue_compensation,
    queue_step_attempt,
    queued_together,
    template_context,
)
from apps.runs.engine.contract import MissingStepType
from apps.runs.engine.transitions import (
    ADVANCING_RUN_STATES,
    OPEN_STEP_STATES,
    SETTLED_IF_ALLOWED,
    check_move,
)
from apps.runs.models import (
    ACTIVE_RUN_STATES,
    SKIPS_KEEPING_DOWNSTREAM,
    AttemptKind,
    AttemptState,
    Run,
    RunState,
    SkipReason,
    StepAttempt,
    StepRun,
    StepState,
)
from apps.workflows.plan import OnFailure, Plan, StepPlan, plan_for
from apps.workflows.services import lock_workflow
from apps.workflows.spec.templating import TemplateEvaluationError, evaluate_condition

logger = get_logger("flowdeck.engine")


def lock_run(run_id: int) -> Run:
    return statements.lock_run(run_id)


def lock(run_id: int) -> None:
    """Hold the run's row for the rest of the caller's transaction, as the engine's transitions
    do (the run first, then the caller's own rows): what other apps call instead of locking it."""
    lock_run(run_id)


def set_run_state(run: Run, state: str, actor, *, summary: str | None = None, extra_fields=(),
                  audit_detail: dict | None = None) -> None:
    before = run.state
    if before == state:
        return
    run.save(update_fields=move(run, state, summary=summary, extra_fields=extra_fields))
    moved(run, before, actor, summary=summary, audit_detail=audit_detail)


def move(run: Run, state: str, *, summary: str | None = None, extra_fields=()) -> list[str]:
    """Make a declared move on the instance, not yet written; the fields it changed. Then the
    caller saves them and calls `moved`: set_run_state does both, create_run inserts a run that
    starts at once already running."""
    check_move(run, state)
    run.state = state
    fields = ["state", *extra_fields]
    if summary is not None:
        run.failure_summary = summary[:2000]
        fields.append("failure_summary")
    if run.is_finished:
        run.finished_at = timezone.now()
        fields.append("finished_at")
    return fields


def moved(run: Run, before: str, actor, *, summary: str | None = None, audit_detail: dict | None = None) -> None:
    """Audit and announce the move from `before` that `move` made and the caller wrote."""
    state = run.state
    record(actor, f"run.{state}", run, before={"state": before},
           after={"state": state, **({"summary": run.failure_summary} if summary else {}), **(audit_detail or {})})
    announce(signals.run_state_changed, sender=Run, run=run, before=before, after=state, actor=actor)
    if run.is_finished:
        after_commit(lambda: announce_ended(run))
    if before in ACTIVE_RUN_STATES and run.is_finished and plan_for(run.version_id).concurrency is not None:
        start_queued_runs(run.workflow_id)


def after_commit(callback) -> None:
    """Run `callback` once the engine's transaction commits, outside the run's lock (the tests'
    in-process worker runs it after each attempt instead)."""
    transaction.on_commit(callback, robust=True)


def announce_ended(run: Run) -> None:
    """Send run_ended; a receiver that fails is logged and does not stop the others."""
    for receiver, result in signals.run_ended.send_robust(sender=Run, run=run):
        if isinstance(result, Exception):
            logger.error("a run_ended receiver failed", run=run.pk, receiver=getattr(receiver, "__qualname__", ""),
                         error=f"{type(result).__name__}: {result}")


def announce(signal, **kwargs) -> None:
    # The engine's buffered audit events go first, so the chain keeps the order things happened in.
    flush()
    signal.send(**kwargs)


def audit_step(actor, run: Run, step_run_id: int, step_id: str, action: str, after: dict | None = None) -> None:
    record(actor, f"step.{action}", object_type="runs.steprun", object_id=step_run_id, team=run.team,
           after={"run": run.pk, "step": step_id, **(after or {})})


def load_steps(run: Run, step_ids: Iterable[str]) -> dict[str, StepRun]:
    return statements.load_steps(run.pk, step_ids)


def _settled(plan: Plan, step_id: str, state: str) -> bool:
    """True when a step no longer holds back the steps that need it."""
    if state in (StepState.SUCCEEDED, StepState.SKIPPED):
        return True
    return state == StepState.FAILED and plan.steps[step_id].on_failure == OnFailure.CONTINUE


def advance(run: Run, plan: Plan, candidates: Iterable[str], actor, known: dict[str, str] | None = None,
            rows: dict[str, StepRun] | None = None) -> bool:
    """Start every pending candidate whose needs are settled; skip what `when` or skipped
    upstreams rule out, following skips downstream. `known` maps step ids to the states the caller
    just gave them, so they are not read back; `rows` are the candidates' step runs when the caller
    read them already. Returns True when the run certainly has work left: an attempt was queued,
    or a candidate still waits for needs that are not settled yet."""
    worklist = list(dict.fromkeys(candidates))
    rows = dict(rows) if rows is not None else load_steps(run, worklist)
    known = known or {}
    work_left = False
    with queued_together():
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
                insert_queued()
                skip(run, row, SkipReason.UPSTREAM_SKIPPED, actor)
            else:
                started = _start_step(run, plan, step, row, actor)
                if started is None:
                    continue
                work_left |= started
                if row.state not in (StepState.SKIPPED, StepState.FAILED):
                    continue
            follow = [sid for sid in step.dependents if sid not in rows or rows[sid].state == StepState.PENDING]
            rows.update(load_steps(run, set(follow) - set(rows)))
            worklist.extend(follow)
    return work_left


def all_wait_for_other_needs(run: Run, plan: Plan, candidates: Iterable[str], rows: dict[str, StepRun],
                             known: dict[str, str]) -> bool:
    """Whether every candidate is pending and still waits for a need that is not settled, so
    `advance` would start, skip or fail none of them: a parallel success that moves nothing on."""
    return all(rows[sid].state == StepState.PENDING and _needs_settled(run, plan, plan.steps[sid], rows, known) is None
               for sid in candidates)


def _needs_settled(run: Run, plan: Plan, step: StepPlan, rows: dict[str, StepRun],
                   known: dict[str, str]) -> bool | None:
    """None while a need of `step` is unsettled; else whether every need was skipped (not by an
    operator, nor rejected with `on_reject: continue`), which skips `step` too. Needs not in hand are checked with EXISTS queries over
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
    if not step.needs or any(state != StepState.SKIPPED or reason in SKIPS_KEEPING_DOWNSTREAM
                             for state, reason in in_hand.values()):
        return False
    return all_in_hand or not _need_rows(run, step).filter(
        ~Q(state=StepState.SKIPPED) | Q(skip_reason__in=SKIPS_KEEPING_DOWNSTREAM)).exists()


def _need_rows(run: Run, step: StepPlan):
    return StepRun.objects.filter(run=run).filter(
        reduce(operator.or_, (Q(position__range=span) for span in step.needs_at)))


def skip(run: Run, row: StepRun, reason: str, actor, output=None, checkpoint: int | None = None) -> None:
    row.state, row.skip_reason, row.finished_at = StepState.SKIPPED, reason, timezone.now()
    row.output = output
    row.save(update_fields=["state", "skip_reason", "finished_at", "output"])
    audit_step(actor, run, row.pk, row.step_id, "skipped",
               {"reason": reason, **({"checkpoint": checkpoint} if checkpoint else {})})


def _start_step(run: Run, plan: Plan, step: StepPlan, row: StepRun, actor) -> bool | None:
    """Gate, skip, fail (bad template) or queue a ready step. True when an attempt was queued;
    None when the step failed and the run stopped advancing."""
    try:
        context = template_context(run, plan, step.reads_steps)
        if step.when and not evaluate_condition(step.when, context, step_id=step.id):
            insert_queued()
            skip(run, row, SkipReason.CONDITION, actor)
            return False
        step_type = get_step_type(step.type)
        if step_type is None:
            raise MissingStepType(step.type)
        if step.approval or step_type.risk == Risk.HIGH:
            insert_queued()
            gate(run, row, step, actor)
            return False
        queue_step_attempt(run, plan, step, row, context=context)
    except (TemplateEvaluationError, MissingStepType) as exc:
        insert_queued()
        fail_unstartable(run, plan, row, exc, actor)
        return None if run.state not in ADVANCING_RUN_STATES else False
    return True


def fail_unstartable(run: Run, plan: Plan, row: StepRun, error: Exception, actor, prefix: str = "") -> None:
    """A step that cannot start (a template fails, its type is not installed) fails at once."""
    error_type = "TemplateError" if isinstance(error, TemplateEvaluationError) else "UnknownStepType"
    fail_step(run, plan, row, error_type, f"{prefix}{error}", actor)


def gate(run: Run, row: StepRun, step: StepPlan, actor) -> None:
    row.state = StepState.WAITING_APPROVAL
    row.save(update_fields=["state"])
    audit_step(actor, run, row.pk, row.step_id, "waiting_approval", {"approval": step.approval})
    if run.state == RunState.RUNNING:
        set_run_state(run, RunState.WAITING, actor)
    announce(signals.step_waiting_approval, sender=StepRun, step_run=StepRun.objects.get(pk=row.pk), run=run,
             approval=step.approval)


def settle_run(run: Run, plan: Plan, actor, *, succeeded: str | None = None) -> None:
    """Bring the run's state in line with its steps: done, waiting for a person, or blocked.
    `succeeded` is the step whose success the caller is settling, if that is what it does."""
    if run.state not in ADVANCING_RUN_STATES:
        return
    if succeeded is not None and succeeded == plan.last_step:
        # Every other step leads to this one, so each has settled before it started: the run is
        # done, without counting its steps (one statement less at the end of most runs).
        set_run_state(run, RunState.SUCCEEDED, actor, summary="")
        return
    # Counted in the database: a wide fan-out would otherwise read every open step at each step's end.
    counts = Counter(dict(StepRun.objects.filter(run=run, state__in=(*OPEN_STEP_STATES, StepState.FAILED))
                          .order_by().values_list("state").annotate(Count("pk"))))
    failed = StepRun.objects.filter(run=run, state=StepState.FAILED).values_list("step_id", flat=True) \
        if counts[StepState.FAILED] else []
    blocking = [sid for sid in failed if plan.steps[sid].on_failure != OnFailure.CONTINUE]
    if blocking and not (counts[StepState.QUEUED] or counts[StepState.RUNNING]):
        set_run_state(run, RunState.PAUSED, actor, summary=f"Step {blocking[0]} failed and waits for a decision.")
    elif not blocking and not any(counts[s] for s in OPEN_STEP_STATES):
        set_run_state(run, RunState.SUCCEEDED, actor, summary="")
    elif counts[StepState.WAITING_APPROVAL]:
        set_run_state(run, RunState.WAITING, actor)
    else:
        set_run_state(run, RunState.RUNNING, actor)


def fail_step(run: Run, plan: Plan, row: StepRun, error_type: str, message: str, actor) -> None:
    """Record a step's final failure and apply its `on_failure`."""
    step = plan.steps[row.step_id]
    now = timezone.now()
    StepRun.objects.filter(pk=row.pk).update(state=StepState.FAILED, error_type=error_type,
                                             error_message=message, finished_at=now)
    row.state, row.finished_at = StepState.FAILED, now
    audit_step(actor, run, row.pk, row.step_id, "failed", {"error_type": error_type, "message": message[:500],
                                                             "on_failure": step.on_failure})
    summary = f"Step {row.step_id} failed: {error_type}: {message}"
    if step.on_failure == OnFailure.PAUSE and run.state in ADVANCING_RUN_STATES:
        set_run_state(run, RunState.PAUSED, actor, summary=summary)
    elif step.on_failure == OnFailure.FAIL and run.state in ADVANCING_RUN_STATES:
        cancel_open_steps(run)
        compensate_or_finish(run, plan, actor, summary)
    announce(signals.step_failed, sender=StepRun, step_run=StepRun.objects.get(pk=row.pk), run=run,
             attempt=StepAttempt.objects.filter(step_run_id=row.pk, kind=AttemptKind.STEP).last(),
             error_type=error_type, error_message=message, compensation=False)


def cancel_open_steps(run: Run) -> list[str]:
    now = timezone.now()
    StepAttempt.objects.filter(step_run__run=run, state__in=(AttemptState.QUEUED, AttemptState.RUNNING)) \
        .update(state=AttemptState.CANCELLED, ended_at=now)
    open_steps = list(StepRun.objects.filter(run=run, state__in=OPEN_STEP_STATES).values_list("step_id", flat=True))
    StepRun.objects.filter(run=run, state__in=OPEN_STEP_STATES).update(state=StepState.CANCELLED, finished_at=now)
    return open_steps


def compensate_or_finish(run: Run, plan: Plan, actor, summary: str) -> None:
    """Queue the next compensation (reverse order of completion), or end the run failed."""
    # Steps a rerun kept are undone too: their effects are still in place.
    done = [row for row in StepRun.objects.filter(run=run, state=StepState.SUCCEEDED)
            .order_by("-finished_at", "-pk") if plan.steps[row.step_id].compensate]
    if not done:
        set_run_state(run, RunState.FAILED, actor, summary=summary)
        return
    set_run_state(run, RunState.COMPENSATING, actor, summary=summary)
    queue_compensation(run, plan, done[0], number=1)


def active_runs_locked(workflow_id: int) -> int:
    """Count the workflow's active runs while holding its row, so two starts cannot both fit."""
    lock_workflow(workflow_id)
    return Run.objects.filter(workflow_id=workflow_id, state__in=ACTIVE_RUN_STATES).count()


def begin_run(run: Run, plan: Plan, actor) -> None:
    run.started_at = timezone.now()
    set_run_state(run, RunState.RUNNING, actor, extra_fields=["started_at"])
    start_steps(run, plan, actor)


def start_steps(run: Run, plan: Plan, actor, rows: dict[str, StepRun] | None = None) -> None:
    """Start what is ready in a run that has just begun; `rows` are its step runs when the caller
    holds them (it has just inserted them)."""
    work_left = advance(run, plan, [step.id for step in plan.steps.values()], actor, rows=rows)
    # With an attempt queued (or a step waiting for it) and no person awaited, the run is running:
    # counting its steps again would only confirm it (one statement less per start).
    if not (work_left and run.state == RunState.RUNNING):
        settle_run(run, plan, actor)


def start_queued_runs(workflow_id: int) -> int:
    """Start the oldest queued runs of a workflow while its concurrency allows."""
    active = active_runs_locked(workflow_id)
    started = 0
    for run in Run.objects.select_related("team").filter(workflow_id=workflow_id, state=RunState.QUEUED) \
            .order_by("created_at", "pk"):
        plan = plan_for(run.version_id)
        if plan.concurrency is not None and active >= plan.concurrency:
            break
        begin_run(run, plan, None)
        active += 1
        started += 1
    return started

