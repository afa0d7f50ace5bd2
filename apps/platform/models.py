"""Liveness of the platform's own processes: one row per Celery worker and per beat, written by
the process itself every few seconds (apps/platform/liveness.py), busy or not.

The platform pages read these rows instead of asking the workers through the broker, whose
broadcast goes unanswered while every worker process is busy.
"""

from django.db import models
from django.utils import timezone


class ProcessKind(models.TextChoices):
    WORKER = "worker", "Celery worker"
    BEAT = "beat", "Celery beat"


class ProcessHeartbeat(models.Model):
    kind = models.CharField(max_length=8, choices=ProcessKind.choices)
    # A worker's Celery node name (worker@host, unique in a cluster); beat@host for beat.
    name = models.CharField(max_length=200)
    host = models.CharField(max_length=200, help_text="socket.gethostname() of the process.")
    pid = models.PositiveIntegerField(help_text="The main process; a worker's pool processes are in pool_pids.")
    # Attempts record "host:pid" of the pool process that ran them (StepAttempt.worker): with
    # pool_pids the sweeper can tell which worker an attempt belongs to and whether it is alive.
    pool_pids = models.JSONField(default=list, blank=True)
    queues = models.JSONField(default=list, blank=True)
    concurrency = models.PositiveIntegerField(default=0)
    busy = models.PositiveIntegerField(default=0, help_text="Tasks running now.")
    started_at = models.DateTimeField(default=timezone.now)
    beat_at = models.DateTimeField(default=timezone.now, db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="Set when the process stopped cleanly.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["kind", "name"], name="platform_one_heartbeat_per_process")]
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"
