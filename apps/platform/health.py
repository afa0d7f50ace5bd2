"""Probes behind the platform admin pages: the database, the broker and its queue depths, beat,
and the Celery workers with their queues and tasks.

Whether beat and the workers are up comes from the liveness records they write themselves
(apps/platform/liveness.py), never from a broadcast that busy workers leave unanswered; the
broadcast only adds the names of the tasks a worker runs.

Every probe answers quickly (short timeouts) and never raises: a broken part is reported as a
`Check` saying what is wrong and what to do, so the page that shows it still opens.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.monitoring.broker_queues import BROKER_TIMEOUT_SECONDS, BrokerUnavailable, broker_label, message_counts
from apps.platform import liveness

# Celery's broadcast waits this long for workers to answer; the page waits at most this much.
INSPECT_TIMEOUT_SECONDS = 1.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    summary: str
    action: str = ""  # what to do when not ok
    latency_ms: float | None = None


def database_check() -> Check:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001  (any failure means the same: the database is unreachable)
        return Check("Database", False, f"{connection.vendor} does not answer: {exc}",
                     "Check DATABASE_URL and that the database server is running.")
    return Check("Database", True, f"{connection.vendor} answers", latency_ms=(time.monotonic() - started) * 1000)


def broker_check() -> Check:
    from apps.celery import app

    started = time.monotonic()
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as exc:  # noqa: BLE001
        return Check("Broker", False, f"{broker_label()} does not answer: {exc}",
                     "Check CELERY_BROKER_URL and that the broker is running; queued steps wait until it is back.")
    return Check("Broker", True, f"{broker_label()} answers", latency_ms=(time.monotonic() - started) * 1000)


def _age(moment: datetime, now: datetime) -> str:
    seconds = max(0, (now - moment).total_seconds())
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def beat_check(now: datetime | None = None) -> Check:
    """From the heartbeat beat writes on every tick (apps/platform/scheduler.py)."""
    now = now or timezone.now()
    beats = liveness.beats(now)
    alive = [beat for beat in beats if beat.alive]
    if len(alive) > 1:
        return Check("Beat", False, f"{len(alive)} beat processes are running: "
                                    f"{', '.join(f'{b.name} (pid {b.pid})' for b in alive)}.",
                     "Keep exactly one: each beat sends every periodic task, so schedules fire twice.")
    if alive:
        return Check("Beat", True, f"{alive[0].name} ticked {_age(alive[0].beat_at, now)}.")
    if not beats:
        return Check("Beat", False, "Beat has never written its heartbeat.",
                     "Start one beat process: celery -A apps beat (it is in the Procfile).")
    last = max(beats, key=lambda beat: beat.beat_at)
    said = "stopped" if last.stopped_at else "stopped writing its heartbeat"
    return Check("Beat", False, f"{last.name} {said} {_age(last.beat_at, now)} ({last.beat_at:%Y-%m-%d %H:%M:%S %Z}).",
                 "Schedules, the sweeper and approval expiry wait until beat runs: restart the beat process "
                 "and check its log.")


def workers_check(now: datetime | None = None) -> Check:
    """From the workers' liveness records; a queue with waiting steps and no live worker is named."""
    now = now or timezone.now()
    alive = [worker for worker in liveness.workers(now) if worker.alive]
    stranded = liveness.queues_without_consumer(now)
    if not alive:
        return Check("Workers", False, f"No worker wrote its heartbeat in the last "
                                       f"{settings.FLOWDECK_WORKER_STALE_SECONDS:g} s.",
                     "Steps stay queued until one runs: start one with celery -A apps worker (see the Procfile).")
    busy = sum(worker.busy for worker in alive)
    capacity = sum(worker.concurrency for worker in alive)
    summary = (f"{len(alive)} worker{'s' if len(alive) != 1 else ''} up, {busy} of {capacity} "
               f"process{'es' if capacity != 1 else ''} busy.")
    if stranded:
        waiting = ", ".join(f"{queue} ({sum(teams.values())} waiting)" for queue, teams in sorted(stranded.items()))
        return Check("Workers", False, f"{summary} No live worker consumes {waiting}.",
                     "Start a worker for those queues (celery -A apps worker -Q <queue>) or route the steps "
                     "to a queue that is consumed.")
    return Check("Workers", True, summary)


def health_checks() -> list[Check]:
    return [database_check(), broker_check(), beat_check(), workers_check()]


# --- Workers and queues -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskInfo:
    name: str
    task_id: str
    args: str
    started: datetime | None


@dataclass
class WorkerInfo:
    """A worker as its liveness record says, with the tasks it named if it answered the broadcast."""

    name: str
    status: str  # up, down or stopped (liveness.Liveness.status); "up" for one that only answered
    queues: list[str] = field(default_factory=list)
    concurrency: int | None = None
    busy: int | None = None
    beat_at: datetime | None = None
    active: list[TaskInfo] = field(default_factory=list)
    reserved: list[TaskInfo] = field(default_factory=list)
    answered: bool = False  # whether it answered the broadcast in time


@dataclass
class WorkerReport:
    workers: list[WorkerInfo]
    error: str = ""  # set when the broadcast itself failed


def _task(raw: dict) -> TaskInfo:
    started = raw.get("time_start")
    return TaskInfo(name=raw.get("name") or raw.get("type") or "?", task_id=raw.get("id", ""),
                    args=str(raw.get("args", ""))[:120],
                    started=datetime.fromtimestamp(started, tz=dt_timezone.utc) if started else None)


def _broadcast() -> tuple[dict, dict, dict, str]:
    """What the workers answering within INSPECT_TIMEOUT_SECONDS say they run; a busy worker may
    not answer, which is why the report's status comes from the liveness records."""
    from apps.celery import app

    def ask(method: str) -> dict:
        return getattr(app.control.inspect(timeout=INSPECT_TIMEOUT_SECONDS), method)() or {}

    try:
        # Each broadcast waits the whole timeout for late answers: ask the three at once.
        with ThreadPoolExecutor(max_workers=3) as pool:
            queues, active, reserved = pool.map(ask, ["active_queues", "active", "reserved"])
    except Exception as exc:  # noqa: BLE001
        return {}, {}, {}, (f"The workers' task lists are missing: asking them through the broker failed ({exc}). "
                            f"Their status comes from their own heartbeats.")
    return queues, active, reserved, ""


def worker_report(now: datetime | None = None) -> WorkerReport:
    """Every worker seen in the last day (liveness records), with its running and prefetched
    tasks when it answered the broadcast."""
    queues, active, reserved, error = _broadcast()
    report = {record.name: WorkerInfo(name=record.name, status=record.status, queues=record.queues,
                                      concurrency=record.concurrency, busy=record.busy, beat_at=record.beat_at)
              for record in liveness.workers(now)}
    for name in set(queues) | set(active) | set(reserved):
        worker = report.setdefault(name, WorkerInfo(name=name, status="up",
                                                    queues=sorted(q["name"] for q in queues.get(name, []))))
        worker.answered = True
        worker.active = [_task(t) for t in active.get(name, [])]
        worker.reserved = [_task(t) for t in reserved.get(name, [])]
    return WorkerReport(sorted(report.values(), key=lambda w: (w.status != "up", w.name)), error)


@dataclass(frozen=True)
class QueueDepth:
    name: str
    messages: int | None  # None: the broker could not say
    consumers: list[str]
    note: str = ""


def queue_depths(queues: list[str], workers: list[WorkerInfo]) -> list[QueueDepth]:
    """Messages waiting in each queue (asked of the broker, `apps.monitoring.broker_queues`) and
    the live workers consuming it; a queue the broker has never seen holds nothing."""
    consumers = {queue: [w.name for w in workers if w.status == "up" and queue in w.queues] for queue in queues}
    try:
        counts = message_counts(queues)
    except BrokerUnavailable as exc:
        return [QueueDepth(queue, None, consumers[queue], str(exc)) for queue in queues]
    return [QueueDepth(queue, 0, consumers[queue], "not declared yet") if counts[queue] is None
            else QueueDepth(queue, counts[queue], consumers[queue]) for queue in queues]
