"""Celery tasks: carry out one step attempt, and sweep for lost work.

`run_attempt` takes an attempt id, claims it (one winner; a redelivery of a finished attempt does
nothing), runs the step while the process's heartbeat thread reports it alive, hands the outcome
to the engine, then runs the successor the engine let it keep (see engine.Handoff), if any.
Messages are acked late and requeued if the worker dies, so a crash loses no attempt.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import traceback
from contextlib import contextmanager, nullcontext
from datetime import timedelta

import structlog
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection

from apps.catalog.registry import PermanentStepError, Reason, StepError, get_step_type
from apps.logging import get_logger
from apps.paths import scrub
from apps.runs import engine, tracing
from apps.runs.engine.contract import RUN_ATTEMPT_TASK
from apps.runs.context import AttemptContext, AttemptRevoked
from apps.runs.retention import purge_runs

logger = get_logger("flowdeck.runs")


@shared_task(name=RUN_ATTEMPT_TASK, acks_late=True, reject_on_worker_lost=True, ignore_result=True,
             bind=True)
def run_attempt(self, attempt_id: int) -> None:
    """Carry out the attempt, then each successor it made ready that this worker may keep (see
    engine.Handoff): a chain of steps runs here without a broker round trip per step.

    In a worker, each attempt's `timeout` is enforced here with a timer signal; Celery's own
    limits on the task (the attempt's timeout plus FLOWDECK_HANDOFF_SECONDS) are the backstop
    that also bounds how long this task may keep successors."""
    started = time.monotonic()
    soft_limit = (self.request.timelimit or (None, None))[1]
    # Timer signals only reach the main thread; elsewhere (tests calling this directly) the
    # step runs without a limit and nothing is kept.
    in_worker = bool(soft_limit) and threading.current_thread() is threading.main_thread()
    claimed = engine.claim_attempt(attempt_id, engine.worker_identity())
    while claimed is not None:
        handoff = _handoff(claimed, started, soft_limit) if in_worker else None
        with structlog.contextvars.bound_contextvars(run_id=claimed.run_id, step_id=claimed.step_id,
                                                     attempt=claimed.number, attempt_kind=claimed.kind):
            with tracing.attempt_span(claimed) as span:
                with _time_limit(claimed.timeout_seconds) if in_worker else nullcontext():
                    outcome = execute(claimed)
                if outcome is None:
                    tracing.set_outcome(span, "revoked")
                elif not engine.finish_attempt(claimed, outcome, handoff):
                    tracing.set_outcome(span, "discarded")
                    logger.info("attempt result discarded: it was cancelled or taken over")
                    return
                else:
                    tracing.set_outcome(span, "failed" if outcome.failed else "succeeded", outcome.error_type)
        claimed = handoff.kept if handoff is not None else None


def _handoff(claimed: engine.ClaimedAttempt, started: float, soft_limit: float) -> engine.Handoff | None:
    """What this task may keep after `claimed`: a successor whose timeout still fits in the
    task's time limit, while the hand-off window lasts."""
    elapsed = time.monotonic() - started
    if elapsed >= settings.FLOWDECK_HANDOFF_SECONDS:
        return None
    return engine.Handoff(queue=claimed.queue, max_timeout=soft_limit - elapsed - 1, worker=claimed.worker)


@contextmanager
def _time_limit(seconds: int):
    """Raise SoftTimeLimitExceeded in the step after `seconds`, as Celery's soft limit does."""

    def expire(signum, frame):
        raise SoftTimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@shared_task(name="flowdeck.runs.sweep_runs", ignore_result=True)
def sweep_runs() -> None:
    report = engine.sweep()
    if report.requeued or report.timed_out or report.resent or report.runs_started:
        logger.warning("sweeper recovered work", requeued=report.requeued, timed_out=report.timed_out,
                       resent=report.resent, runs_started=report.runs_started)


@shared_task(name="flowdeck.runs.purge", ignore_result=True)
def purge() -> None:
    if settings.FLOWDECK_RUN_RETENTION_DAYS:
        report = purge_runs(timedelta(days=settings.FLOWDECK_RUN_RETENTION_DAYS))
        logger.info("old runs purged", **report.as_dict())


def execute(claimed: engine.ClaimedAttempt) -> engine.AttemptOutcome | None:
    """Run the step's code; None when the attempt was revoked while it ran."""
    ctx = AttemptContext(claimed)
    started = time.monotonic()
    beats = heartbeats()
    beats.watch(claimed)
    try:
        step_type = get_step_type(claimed.step_type)
        if step_type is None:
            raise PermanentStepError(f"step type {claimed.step_type!r} is not installed on worker "
                                     f"{claimed.worker}: install it on every worker serving this queue")
        output, artifact = ctx.store_output(step_type.run(ctx))
        outcome = engine.AttemptOutcome(output=output, output_artifact=artifact)
    except AttemptRevoked:
        return None
    except SoftTimeLimitExceeded:
        outcome = engine.AttemptOutcome(
            error_type="Timeout", error_message=f"The step ran longer than its timeout of {claimed.timeout_seconds}s "
                                                f"and was stopped. Raise `timeout` if it needs longer.",
            error_reason=Reason.TIMEOUT, error_detail={"timeout_seconds": claimed.timeout_seconds})
    except Exception as exc:  # any failure of the step's own code is recorded on the attempt
        permanent = isinstance(exc, StepError) and exc.permanent
        # People read these on the step page: the roots' absolute paths (OSError texts) are named instead.
        message = scrub(str(exc))
        ctx.log(message or type(exc).__name__, level="error", error_type=type(exc).__name__,
                traceback=scrub(traceback.format_exc(limit=20)))
        outcome = engine.AttemptOutcome(error_type=type(exc).__name__, error_message=message, permanent=permanent,
                                        error_reason=getattr(exc, "reason", ""), error_detail=getattr(exc, "detail", None))
    finally:
        beats.forget(claimed)
    ctx.flush_logs()
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    outcome.records_in, outcome.records_out = ctx.records_in, ctx.records_out
    outcome.records_rejected, outcome.log_lines_dropped = ctx.records_rejected, ctx.log_lines_dropped
    return outcome


class _Heartbeats(threading.Thread):
    """One thread per worker process that beats for the attempts running in it every
    FLOWDECK_HEARTBEAT_SECONDS, even if their code never calls ctx.heartbeat, so the sweeper can
    tell a long step from a dead worker. One long-lived thread, not one per attempt: starting and
    joining a thread for each step cost more than a short step itself."""

    def __init__(self):
        super().__init__(name="flowdeck-heartbeats", daemon=True)
        self._running: dict[int, engine.ClaimedAttempt] = {}
        self._lock = threading.Lock()

    def watch(self, claimed: engine.ClaimedAttempt) -> None:
        with self._lock:
            self._running[claimed.attempt_id] = claimed

    def forget(self, claimed: engine.ClaimedAttempt) -> None:
        with self._lock:
            self._running.pop(claimed.attempt_id, None)

    def run(self) -> None:
        while True:
            time.sleep(settings.FLOWDECK_HEARTBEAT_SECONDS)
            with self._lock:
                running = list(self._running.values())
            if not running:
                connection.close()  # this thread's own connection: none is held while idle
                continue
            try:
                for claimed in running:
                    engine.heartbeat(claimed)
            except Exception:  # noqa: BLE001  (a failed beat is retried next round; the thread must live)
                logger.exception("heartbeat failed")
                connection.close()


_heartbeats: _Heartbeats | None = None
_heartbeats_pid: int | None = None


def heartbeats() -> _Heartbeats:
    """This process's heartbeat thread, started on first use (and again in a forked child)."""
    global _heartbeats, _heartbeats_pid
    if _heartbeats is None or _heartbeats_pid != os.getpid():
        _heartbeats, _heartbeats_pid = _Heartbeats(), os.getpid()
        _heartbeats.start()
    return _heartbeats
