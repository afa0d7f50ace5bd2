"""Probes behind the platform admin pages: the database, the broker and its queue depths, beat,
and the Celery workers with their queues and tasks.

Every probe answers quickly (short timeouts) and never raises: a broken part is reported as a
`Check` saying what is wrong and what to do, so the page that shows it still opens.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.monitoring.broker_queues import BROKER_TIMEOUT_SECONDS, BrokerUnavailable, broker_label, message_counts

# Celery's broadcast waits this long for workers to answer; the page waits at most this much.
INSPECT_TIMEOUT_SECONDS = 1.0
# The engine's sweeper is scheduled every FLOWDECK_SWEEP_INTERVAL_SECONDS; beat is presumed
# down when no periodic task ran for several of those intervals.
BEAT_STALE_INTERVALS = 4


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


def last_beat_tick() -> datetime | None:
    from django_celery_beat.models import PeriodicTask
    from django.db.models import Max

    return PeriodicTask.objects.aggregate(last=Max("last_run_at"))["last"]


def beat_check(now: datetime | None = None) -> Check:
    now = now or timezone.now()
    last = last_beat_tick()
    stale_after = timedelta(seconds=settings.FLOWDECK_SWEEP_INTERVAL_SECONDS * BEAT_STALE_INTERVALS)
    if last is None:
        return Check("Beat", False, "No periodic task has ever run.",
                     "Start one beat process: celery -A apps beat (it is in the Procfile).")
    if now - last > stale_after:
        return Check("Beat", False, f"The last periodic task ran at {last:%Y-%m-%d %H:%M:%S %Z}.",
                     "Beat looks stopped: schedules, the sweeper and approval expiry wait until it runs. "
                     "Restart the beat process and check its log.")
    return Check("Beat", True, f"The last periodic task ran at {last:%Y-%m-%d %H:%M:%S %Z}.")


def health_checks() -> list[Check]:
    return [database_check(), broker_check(), beat_check()]


# --- Workers and queues -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskInfo:
    name: str
    task_id: str
    args: str
    started: datetime | None


@dataclass
class WorkerInfo:
    name: str
    queues: list[str] = field(default_factory=list)
    active: list[TaskInfo] = field(default_factory=list)
    reserved: list[TaskInfo] = field(default_factory=list)
    concurrency: int | None = None


@dataclass
class WorkerReport:
    workers: list[WorkerInfo]
    error: str = ""  # set when the broadcast itself failed


def _task(raw: dict) -> TaskInfo:
    started = raw.get("time_start")
    return TaskInfo(name=raw.get("name") or raw.get("type") or "?", task_id=raw.get("id", ""),
                    args=str(raw.get("args", ""))[:120],
                    started=datetime.fromtimestamp(started, tz=dt_timezone.utc) if started else None)


def worker_report() -> WorkerReport:
    """What every worker answering within INSPECT_TIMEOUT_SECONDS is doing."""
    from apps.celery import app

    def ask(method: str) -> dict:
        return getattr(app.control.inspect(timeout=INSPECT_TIMEOUT_SECONDS), method)() or {}

    try:
        # Each broadcast waits the whole timeout for late answers: ask the four at once.
        with ThreadPoolExecutor(max_workers=4) as pool:
            queues, active, reserved, stats = pool.map(ask, ["active_queues", "active", "reserved", "stats"])
    except Exception as exc:  # noqa: BLE001
        return WorkerReport([], f"Could not ask the workers through the broker: {exc}. Check the broker first.")
    workers = []
    for name in sorted(set(queues) | set(active) | set(reserved) | set(stats)):
        workers.append(WorkerInfo(
            name=name, queues=sorted(q["name"] for q in queues.get(name, [])),
            active=[_task(t) for t in active.get(name, [])], reserved=[_task(t) for t in reserved.get(name, [])],
            concurrency=(stats.get(name, {}).get("pool") or {}).get("max-concurrency")))
    return WorkerReport(workers)


@dataclass(frozen=True)
class QueueDepth:
    name: str
    messages: int | None  # None: the broker could not say
    consumers: list[str]
    note: str = ""


def queue_depths(queues: list[str], workers: list[WorkerInfo]) -> list[QueueDepth]:
    """Messages waiting in each queue (asked of the broker, `apps.monitoring.broker_queues`) and
    the workers consuming it; a queue the broker has never seen holds nothing."""
    consumers = {queue: [w.name for w in workers if queue in w.queues] for queue in queues}
    try:
        counts = message_counts(queues)
    except BrokerUnavailable as exc:
        return [QueueDepth(queue, None, consumers[queue], str(exc)) for queue in queues]
    return [QueueDepth(queue, 0, consumers[queue], "not declared yet") if counts[queue] is None
            else QueueDepth(queue, counts[queue], consumers[queue]) for queue in queues]
