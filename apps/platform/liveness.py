"""Liveness records of workers and beat: written by each process for itself, read by the health
and workers pages, the queue alert (apps.monitoring) and, next, the sweeper.

A worker's record is written by a thread in its main process (`WorkerLiveness`, a Celery
bootstep) every FLOWDECK_WORKER_HEARTBEAT_SECONDS, so it stays fresh while every pool process
runs a long step; beat's by its scheduler on every tick (apps/platform/scheduler.py). A record
older than its stale limit means the process is gone, whatever it last said.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import bootsteps
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from apps.logging import get_logger

logger = get_logger("flowdeck.platform")
# Records of processes gone longer than this are no longer shown (and are deleted by the next worker start).
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class Liveness:
    """A record as the pages read it: what the process last said, and whether it is still alive."""

    name: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    busy: int
    started_at: datetime
    beat_at: datetime
    stopped_at: datetime | None
    alive: bool

    @property
    def status(self) -> str:
        if self.alive:
            return "up"
        return "stopped" if self.stopped_at else "down"


def record_heartbeat(kind: str, name: str, **fields) -> None:
    """Upsert the record of this process (`fields` are ProcessHeartbeat columns)."""
    from apps.platform.models import ProcessHeartbeat

    ProcessHeartbeat.objects.update_or_create(kind=kind, name=name, defaults={
        "host": socket.gethostname(), "pid": os.getpid(), "beat_at": timezone.now(), "stopped_at": None, **fields})


def record_stopped(kind: str, name: str) -> None:
    from apps.platform.models import ProcessHeartbeat

    ProcessHeartbeat.objects.filter(kind=kind, name=name, pid=os.getpid()).update(stopped_at=timezone.now())


def _read(kind: str, stale_seconds: float, now: datetime | None) -> list[Liveness]:
    from apps.platform.models import ProcessHeartbeat

    now = now or timezone.now()
    fresh_after = now - timedelta(seconds=stale_seconds)
    rows = ProcessHeartbeat.objects.filter(kind=kind, beat_at__gte=now - FORGET_AFTER).order_by("name")
    return [Liveness(name=row.name, host=row.host, pid=row.pid, queues=row.queues, concurrency=row.concurrency,
                     busy=row.busy, started_at=row.started_at, beat_at=row.beat_at, stopped_at=row.stopped_at,
                     alive=row.stopped_at is None and row.beat_at >= fresh_after) for row in rows]


def workers(now: datetime | None = None) -> list[Liveness]:
    """Every worker seen in the last day, alive or not."""
    from apps.platform.models import ProcessKind

    return _read(ProcessKind.WORKER, settings.FLOWDECK_WORKER_STALE_SECONDS, now)


def beats(now: datetime | None = None) -> list[Liveness]:
    from apps.platform.models import ProcessKind

    return _read(ProcessKind.BEAT, settings.FLOWDECK_BEAT_STALE_SECONDS, now)


def live_consumers(now: datetime | None = None) -> dict[str, list[str]]:
    """Each queue a live worker consumes, with the names of those workers."""
    consumers: dict[str, list[str]] = {}
    for worker in workers(now):
        if worker.alive:
            for queue in worker.queues:
                consumers.setdefault(queue, []).append(worker.name)
    return consumers


class WorkerLiveness(bootsteps.StartStopStep):
    """A worker bootstep: a daemon thread in the main process writing this worker's record.

    The main process only dispatches (the pool processes run the steps), so the record stays
    fresh however long the steps take; a clean shutdown marks it stopped, a killed worker's
    record goes stale."""

    requires = {"celery.worker.components:Pool"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, worker) -> None:
        from apps.platform.models import ProcessHeartbeat, ProcessKind

        ProcessHeartbeat.objects.filter(kind=ProcessKind.WORKER, beat_at__lt=timezone.now() - FORGET_AFTER).delete()
        self._thread = threading.Thread(target=self._beat_until_stopped, args=(worker,), name="worker-liveness",
                                        daemon=True)
        self._thread.start()

    def stop(self, worker) -> None:
        from apps.platform.models import ProcessKind

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            record_stopped(ProcessKind.WORKER, worker.hostname)
        except Exception as exc:  # noqa: BLE001  (a database gone at shutdown: the record goes stale instead)
            logger.warning("could not mark the worker stopped", error=str(exc))
        finally:
            connection.close()

    def _beat_until_stopped(self, worker) -> None:
        from celery.worker import state

        from apps.platform.models import ProcessKind

        started = timezone.now()
        while True:
            try:
                pool_info = worker.pool.info if worker.pool is not None else {}
                record_heartbeat(ProcessKind.WORKER, worker.hostname, started_at=started,
                                 queues=sorted(worker.app.amqp.queues.consume_from or ()),
                                 concurrency=worker.concurrency or 0, busy=len(state.active_requests),
                                 pool_pids=list(pool_info.get("processes") or [os.getpid()]))
            except Exception as exc:  # noqa: BLE001  (keep beating: the next write may succeed)
                logger.warning("could not write the worker's liveness record", error=str(exc))
                close_old_connections()
                connection.close()
            try:
                taken = take_over_from_dead_workers()
                if taken:
                    logger.warning("took over the attempts of a dead worker", attempts=taken)
            except Exception as exc:  # noqa: BLE001  (the sweeper does it too; the next beat tries again)
                logger.warning("could not take over a dead worker's attempts", error=str(exc))
            if self._stop.wait(settings.FLOWDECK_WORKER_HEARTBEAT_SECONDS):
                return


def dead_pool_processes(now: datetime | None = None) -> set[str]:
    """`host:pid` of every pool process of a worker that stopped or went silent in the last day,
    as attempts record them (StepAttempt.worker); a pid a live worker on that host now uses again
    is left out."""
    from apps.platform.models import ProcessHeartbeat, ProcessKind

    now = now or timezone.now()
    fresh_after = now - timedelta(seconds=settings.FLOWDECK_WORKER_STALE_SECONDS)
    dead, alive = set(), set()
    for host, pids, beat_at, stopped_at in ProcessHeartbeat.objects.filter(
            kind=ProcessKind.WORKER, beat_at__gte=now - FORGET_AFTER).values_list("host", "pool_pids", "beat_at",
                                                                                 "stopped_at"):
        (alive if stopped_at is None and beat_at >= fresh_after else dead).update(f"{host}:{pid}" for pid in pids)
    return dead - alive


def take_over_from_dead_workers(now: datetime | None = None) -> int:
    """Give the running attempts of dead workers to live ones (the engine's requeue), so a worker
    that dies is noticed within a few heartbeats, not after the attempts' own stale limit."""
    from apps.runs.engine import take_over

    dead = dead_pool_processes(now)
    return take_over(dead) if dead else 0


def queues_without_consumer(now: datetime | None = None) -> dict[str, dict[int, int]]:
    """Queues where step attempts have waited longer than a worker's stale limit (past any retry
    delay) and no live worker consumes them: {queue: {team id: waiting attempts}}."""
    from django.db.models import Count

    from apps.runs.models import AttemptState, StepAttempt

    now = now or timezone.now()
    waited_since = now - timedelta(seconds=settings.FLOWDECK_WORKER_STALE_SECONDS)
    consumed = live_consumers(now)
    waiting = StepAttempt.objects.filter(state=AttemptState.QUEUED, queued_at__lt=waited_since,
                                         not_before__lt=waited_since).exclude(queue__in=list(consumed)) \
        .values_list("queue", "step_run__run__team_id").annotate(n=Count("pk"))
    stranded: dict[str, dict[int, int]] = {}
    for queue, team_id, count in waiting:
        stranded.setdefault(queue, {})[team_id] = count
    return stranded
