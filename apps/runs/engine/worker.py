"""The worker's side of the engine: claim an attempt, beat while it runs, record how it ended
and move the run on (keeping one successor for the worker when it offered, contract.Handoff).

Crash safety: a worker claims an attempt with a compare-and-swap update (queued -> running, one
winner, the delivery count one higher) and may beat for it and finish it only while that claim
stands: the worker's name and the delivery count it claimed at are its fencing token, so a
worker whose attempt was taken over while it was cut off has its late result refused, whoever
claimed next. A redelivered message for a finished attempt does nothing. The per-step statements
are plain SQL in apps.runs.statements.
"""

from __future__ import annotations

import os
import random

from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.audit.log import batched, flush
from apps.knowledge.transience import Evidence, RetryVerdict, classify
from apps.runs import signals, statements
from apps.runs.engine.advancing import (
    advance, all_wait_for_other_needs, announce, audit_step, compensate_or_finish, fail_step, fail_unstartable,
    set_run_state, settle_run,
)
from apps.runs.engine.attempts import queue_compensation, queue_step_attempt
from apps.runs.engine.contract import AttemptOutcome, ClaimedAttempt, Handoff, MissingStepType, current_handoff
from apps.runs.engine.transitions import ADVANCING_RUN_STATES, RETRYING_RUN_STATES
from apps.runs.models import AttemptKind, AttemptState, Run, RunState, StepAttempt, StepRun, StepState
from apps.workflows.plan import OnFailure, Plan, RetryWhen, plan_for
from apps.runs.signatures import error_signature


def claim_attempt(attempt_id: int, worker: str) -> ClaimedAttempt | None:
    """Claim a queued attempt for `worker`; None when another claimant won or it already ended.

    A redelivered message whose claimant died on this host (SIGKILL, OOM) takes the attempt over
    at once instead of waiting for the sweeper. No transaction: the claim is one statement, and a
    worker dying before the step run is marked running leaves it queued, which the sweeper's
    requeue expects anyway."""
    now = timezone.now()
    found = statements.claim(attempt_id, worker, now)
    if found is not None:
        (step_run_id, kind, number, step_type, params, idempotency_key, timeout, queue, deliveries, run_id,
         step_id, version_id) = found
        return ClaimedAttempt(attempt_id=attempt_id, step_run_id=step_run_id, run_id=run_id, step_id=step_id,
                              kind=kind, number=number, step_type=step_type, params=params,
                              idempotency_key=idempotency_key, timeout_seconds=timeout, worker=worker, queue=queue,
                              claim=deliveries, version_id=version_id)
    if not _take_over_from_dead_local_worker(attempt_id, worker, now):
        return None
    claimed = claimed_from(StepAttempt.objects.select_related("step_run").get(pk=attempt_id))
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
    alive = StepAttempt.objects.filter(pk=claimed.attempt_id, state=AttemptState.RUNNING, worker=claimed.worker,
                                       deliveries=claimed.claim).update(heartbeat_at=timezone.now())
    if alive and progress is not None and claimed.kind == AttemptKind.STEP:
        StepRun.objects.filter(pk=claimed.step_run_id).update(progress=progress)
    return bool(alive)


def finish_attempt(claimed: ClaimedAttempt, outcome: AttemptOutcome, handoff: Handoff | None = None) -> bool:
    """Record how an attempt ended and move the run on. False when the result was discarded
    because the attempt was no longer ours (cancelled, finished, or taken over after a crash).
    With `handoff`, one successor this queues may be kept for the caller to run (see Handoff)."""
    token = current_handoff.set(handoff)
    try:
        return _finish_attempt(claimed, outcome)
    finally:
        current_handoff.reset(token)


def _finish_attempt(claimed: ClaimedAttempt, outcome: AttemptOutcome) -> bool:
    verdict = _retry_verdict(claimed, outcome)
    now = timezone.now()
    succeeded = claimed.kind == AttemptKind.STEP and not outcome.failed
    plan = plan_for(claimed.version_id) if claimed.version_id else None
    successors = plan.steps[claimed.step_id].dependents if succeeded and plan else ()
    # A successor with no other need is ready now: only the exclusive lock may start it.
    if successors and all(len(plan.steps[sid].needs) > 1 for sid in successors):
        try:
            return _succeed_beside_siblings(claimed, outcome, now, plan, successors)
        except _MovesTheRunOn:
            pass  # rolled back: decided below under the run's exclusive lock
    with batched():
        # A step's success is recorded on its step run at once, and its successors read with the lock.
        run, ours, successor_rows = statements.lock_run_and_end_attempt(
            **_ending(claimed, outcome, now, succeeded), steps=successors)
        if not ours:
            return False
        plan = plan_for(run.version_id)
        if claimed.kind == AttemptKind.COMPENSATION:
            _compensation_ended(run, plan, claimed, outcome)
        elif outcome.failed:
            _step_attempt_failed(run, plan, claimed, outcome, verdict)
        else:
            _step_succeeded(run, plan, claimed, successor_rows if successors else None)
    return True


def _ending(claimed: ClaimedAttempt, outcome: AttemptOutcome, now, succeeded: bool) -> dict:
    """The arguments of `statements.lock_run_and_end_attempt` that record how the attempt ended."""
    return dict(
        run_id=claimed.run_id, attempt_id=claimed.attempt_id, worker=claimed.worker, claim=claimed.claim, now=now,
        failed=outcome.failed, output=outcome.output, output_artifact=outcome.output_artifact,
        error_type=outcome.error_type[:200], error_message=outcome.error_message,
        error_signature=error_signature(outcome.error_type, outcome.error_message) if outcome.failed else "",
        duration_ms=outcome.duration_ms, records=(outcome.records_in, outcome.records_out, outcome.records_rejected),
        log_lines_dropped=outcome.log_lines_dropped, error_reason=outcome.error_reason,
        error_detail=outcome.error_detail or None, succeeded_step_run_id=claimed.step_run_id if succeeded else None)


class _MovesTheRunOn(Exception):
    """A success under the run's shared lock would start, skip or fail a step, or change the run."""


def _succeed_beside_siblings(claimed: ClaimedAttempt, outcome: AttemptOutcome, now, plan: Plan,
                             successors: tuple[str, ...]) -> bool:
    """Record a success that only settles one need among several: under the run's shared lock,
    so the parallel steps of a fan-out finish side by side instead of taking turns on the run's
    row. The successors' rows are locked (in one order) and their needs checked after the lock is
    granted, so of two last needs finishing together the later sees the earlier and moves on.
    Anything more (a successor ready, a run not running) raises _MovesTheRunOn: the transaction
    rolls back and the caller decides under the exclusive lock, as for every other finish."""
    with batched():
        run, ours, _ = statements.lock_run_and_end_attempt(**_ending(claimed, outcome, now, True), shared=True)
        if not ours:
            return False
        if run.state != RunState.RUNNING:
            raise _MovesTheRunOn
        audit_step(None, run, claimed.step_run_id, claimed.step_id, "succeeded", {"attempt": claimed.number})
        # Appended before the successors' rows are locked: those locks make parallel successes
        # take turns until they commit, so the less they cover the better.
        flush()
        rows = statements.lock_steps(run.pk, successors)
        if not all_wait_for_other_needs(run, plan, successors, rows, {claimed.step_id: StepState.SUCCEEDED}):
            raise _MovesTheRunOn
    return True


def _step_succeeded(run: Run, plan: Plan, claimed: ClaimedAttempt, successor_rows: dict[str, StepRun] | None) -> None:
    audit_step(None, run, claimed.step_run_id, claimed.step_id, "succeeded", {"attempt": claimed.number})
    if run.state not in ADVANCING_RUN_STATES:
        return
    work_left = advance(run, plan, plan.steps[claimed.step_id].dependents, None,
                        known={claimed.step_id: StepState.SUCCEEDED}, rows=successor_rows)
    # A success only changes a running run's state when it was the last open step: with a
    # successor queued or still waiting for its other needs, there is nothing to count.
    if not (work_left and run.state == RunState.RUNNING):
        settle_run(run, plan, None, succeeded=claimed.step_id)


def _retry_verdict(claimed: ClaimedAttempt, outcome: AttemptOutcome) -> RetryVerdict | None:
    """Under `retries: {when: transient}`, whether this failure is passing trouble (recorded on
    the attempt, permanent ones included, so the run page says why it was not retried); None
    when the step retries any failure, or has no retry left to give. Asked before the run's
    lock is taken: the assistant may read its index."""
    if not outcome.failed or claimed.kind != AttemptKind.STEP:
        return None
    version_id, team_id = Run.objects.values_list("version_id", "team_id").get(pk=claimed.run_id)
    retries = plan_for(version_id).steps[claimed.step_id].retries
    if retries["when"] != RetryWhen.TRANSIENT or not retries["count"]:
        return None
    budget_from = StepRun.objects.values_list("retry_budget_from", flat=True).get(pk=claimed.step_run_id)
    if claimed.number - budget_from >= retries["count"]:
        return None
    if outcome.permanent and not outcome.error_reason:
        return RetryVerdict("", "", None, "step type", False, [Evidence("The step type marked this failure permanent")])
    try:
        verdict = classify(outcome.error_type, outcome.error_message, reason=outcome.error_reason,
                           detail=outcome.error_detail, team_id=team_id,
                           error_signature=error_signature(outcome.error_type, outcome.error_message))
    except Exception as exc:  # noqa: BLE001  (no verdict: the failure goes to the checkpoint)
        return RetryVerdict("", "", None, "none", False, [Evidence(f"The failure could not be classed: {exc}")])
    verdict.transient = verdict.transient and not outcome.permanent
    return verdict


def _step_attempt_failed(run: Run, plan: Plan, claimed: ClaimedAttempt, outcome: AttemptOutcome,
                         verdict: RetryVerdict | None) -> None:
    step = plan.steps[claimed.step_id]
    row = StepRun.objects.get(pk=claimed.step_run_id)
    retries_used = claimed.number - row.retry_budget_from
    # Retries are mechanical: they go on even while the run is paused by another branch.
    retryable = (not outcome.permanent and retries_used < step.retries["count"]
                 and run.state in RETRYING_RUN_STATES)
    if verdict is not None:
        StepAttempt.objects.filter(pk=claimed.attempt_id).update(
            retry_verdict={**verdict.as_dict(), "retried": retryable and verdict.transient})
        if retryable and not verdict.transient:
            retryable = False
            audit_step(None, run, row.pk, row.step_id, "retry_withheld", {
                "attempt": claimed.number, "category": verdict.category, "confidence": verdict.confidence,
                "source": verdict.source})
    if retryable:
        delay = retry_delay(step.retries, retries_used + 1)
        try:
            queue_step_attempt(run, plan, step, row, params=claimed.params, countdown=delay)
        except MissingStepType as missing:
            fail_unstartable(run, plan, row, missing, None)
            settle_run(run, plan, None)
            return
        audit_step(None, run, row.pk, row.step_id, "retry_scheduled", {
            "attempt": claimed.number + 1, "delay_seconds": round(delay, 3), "error_type": outcome.error_type,
            **({"category": verdict.category, "source": verdict.source} if verdict else {})})
        return
    fail_step(run, plan, row, outcome.error_type, outcome.error_message, None)
    if step.on_failure == OnFailure.CONTINUE and run.state in ADVANCING_RUN_STATES:
        advance(run, plan, step.dependents, None, known={step.id: StepState.FAILED})
    settle_run(run, plan, None)


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
        audit_step(None, run, row.pk, row.step_id, "compensated", {"attempt": claimed.number})
        compensate_or_finish(run, plan, None, run.failure_summary)
        return
    step = plan.steps[row.step_id]
    if not outcome.permanent and claimed.number <= step.retries["count"]:
        queue_compensation(run, plan, row, claimed.number + 1, retry_delay(step.retries, claimed.number))
        return
    message = f"Compensation of step {row.step_id} failed: {outcome.error_type}: {outcome.error_message}"
    audit_step(None, run, row.pk, row.step_id, "compensation_failed", {"error_type": outcome.error_type})
    set_run_state(run, RunState.FAILED, None, summary=f"{message}. Undo what is left by hand.")
    announce(signals.step_failed, sender=StepRun, step_run=row, run=run,
             attempt=StepAttempt.objects.get(pk=claimed.attempt_id), error_type=outcome.error_type,
             error_message=outcome.error_message, compensation=True)


def claimed_from(attempt: StepAttempt) -> ClaimedAttempt:
    return ClaimedAttempt(
        attempt_id=attempt.pk, step_run_id=attempt.step_run_id, run_id=attempt.step_run.run_id,
        step_id=attempt.step_run.step_id, kind=attempt.kind, number=attempt.number, step_type=attempt.step_type,
        params=attempt.params, idempotency_key=attempt.idempotency_key, timeout_seconds=attempt.timeout_seconds,
        worker=attempt.worker, queue=attempt.queue, claim=attempt.deliveries,
    )

