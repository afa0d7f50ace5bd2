"""Recovery: the sweeper, which requeues attempts whose worker went silent, times out those past
their hard limit, re-sends messages that were lost and starts queued runs that have a free slot;
and re-running a failed run from its failure.

A requeued attempt keeps its idempotency key, so effects the lost worker already recorded in the
step context's ledger are not repeated.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.audit.log import batched
from apps.catalog.registry import Reason
from apps.platform.liveness import dead_pool_processes
from apps.runs.engine.advancing import audit_step, lock_run, start_queued_runs
from apps.runs.engine import attempts
from apps.runs.engine.contract import HARD_TIME_LIMIT_GRACE_SECONDS, AttemptOutcome
from apps.runs.engine.starting import create_run
from apps.runs.engine.transitions import require
from apps.runs.engine.worker import claimed_from, finish_attempt
from apps.runs.models import AttemptKind, AttemptState, Run, RunState, StepAttempt, StepRun, StepState, Trigger
from apps.workflows.plan import plan_for


SWEEP_BATCH = 500


@dataclass
class SweepReport:
    requeued: int = 0
    timed_out: int = 0
    resent: int = 0
    runs_started: int = 0


def sweep(now=None) -> SweepReport:
    """Requeue attempts whose worker went silent, time out those past their hard limit, re-send
    messages that were lost, and start queued runs that have a free slot."""
    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.FLOWDECK_STALE_AFTER_SECONDS)
    report = SweepReport()
    dead = dead_pool_processes(now)
    report.requeued += take_over(dead) if dead else 0
    silent = StepAttempt.objects.filter(state=AttemptState.RUNNING, heartbeat_at__lt=stale_before) \
        .select_related("step_run")[:SWEEP_BATCH]
    for attempt in silent:
        deadline = attempt.started_at + timedelta(seconds=attempt.timeout_seconds + HARD_TIME_LIMIT_GRACE_SECONDS)
        if deadline < now:
            claimed = claimed_from(attempt)
            report.timed_out += finish_attempt(claimed, AttemptOutcome(
                error_type="Timeout", error_message=f"The step ran past its timeout of {attempt.timeout_seconds}s "
                                                    f"and its worker stopped answering.",
                error_reason=Reason.WORKER_LOST, error_detail={"worker": attempt.worker}))
        else:
            report.requeued += _requeue(attempt)
    waited = StepAttempt.objects.filter(state=AttemptState.QUEUED, queued_at__lt=stale_before,
                                        not_before__lt=stale_before).order_by("queued_at", "pk") \
        .values_list("pk", "queue", "timeout_seconds", "queued_at")[:SWEEP_BATCH]
    for attempt_id, queue, timeout, queued_at in probably_lost(list(waited)):
        with batched():
            if StepAttempt.objects.filter(pk=attempt_id, state=AttemptState.QUEUED, queued_at=queued_at) \
                    .update(queued_at=now):
                attempts.send_on_commit(attempt_id, queue, timeout)
                report.resent += 1
    for workflow_id in set(Run.objects.filter(state=RunState.QUEUED).values_list("workflow_id", flat=True)):
        with batched():
            report.runs_started += start_queued_runs(workflow_id)
    return report


def probably_lost(waited: list[tuple]) -> list[tuple]:
    """Of the attempts queued longer than the stale limit (oldest first), those whose message is
    likely lost rather than waiting behind others: per queue, all but as many as the broker still
    holds messages (a queue delivers its oldest first, so the oldest are the lost ones). When the
    broker cannot say, every one of them (a duplicate message is harmless: claims are exclusive)."""
    if not waited:
        return []
    from apps.monitoring.broker_queues import BrokerUnavailable, message_counts

    by_queue: dict[str, list[tuple]] = {}
    for attempt in waited:
        by_queue.setdefault(attempt[1], []).append(attempt)
    try:
        holding = message_counts(sorted(by_queue))
    except BrokerUnavailable:
        return waited
    return [attempt for queue, attempts in by_queue.items()
            for attempt in attempts[:max(0, len(attempts) - (holding.get(queue) or 0))]]


def take_over(dead_workers: set[str]) -> int:
    """Requeue the running attempts of pool processes known dead (`host:pid`, as StepAttempt.worker
    records them): the live workers' liveness records say so (apps.platform.liveness), so this does
    not wait for the attempts' own heartbeats to go stale. Returns how many were requeued."""
    running = StepAttempt.objects.filter(state=AttemptState.RUNNING, worker__in=sorted(dead_workers)) \
        .select_related("step_run")[:SWEEP_BATCH]
    return sum(_requeue(attempt) for attempt in running)


def _requeue(attempt: StepAttempt) -> bool:
    """Give a silent worker's attempt to another worker: same attempt, same idempotency key, so
    effects the lost worker already recorded are not repeated. Only the claim that was read is
    given up (a newer one, under the same worker name, stands)."""
    with batched():
        run = lock_run(attempt.step_run.run_id)
        if not StepAttempt.objects.filter(pk=attempt.pk, state=AttemptState.RUNNING, worker=attempt.worker,
                                          deliveries=attempt.deliveries) \
                .update(state=AttemptState.QUEUED, queued_at=timezone.now(), worker=""):
            return False
        if attempt.kind == AttemptKind.STEP:
            StepRun.objects.filter(pk=attempt.step_run_id, state=StepState.RUNNING).update(state=StepState.QUEUED)
        audit_step(None, run, attempt.step_run_id, attempt.step_run.step_id, "requeued", {
            "attempt": attempt.number, "lost_worker": attempt.worker})
        attempts.send_on_commit(attempt.pk, attempt.queue, attempt.timeout_seconds)
    return True


@batched()
def rerun_from_failure(actor, run: Run) -> Run:
    """A new run of the same version and inputs that keeps the outputs of the steps that
    succeeded (and were not compensated) and runs the rest."""
    run = lock_run(run.pk)
    require(run, "rerun")
    kept = {step.step_id: step for step in run.step_runs.filter(state=StepState.SUCCEEDED)}
    return create_run(actor, run.version, plan_for(run.version_id), run.inputs, Trigger.MANUAL,
                      {"rerun_of": run.pk}, rerun_of=run, kept=kept)

