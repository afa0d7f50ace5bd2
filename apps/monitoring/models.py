"""Watching runs by exception: SLA status per run, per-workflow anomaly thresholds, and alerts.

An Alert is raised only for exceptions (SLA at risk or breached, an anomaly, a paused run, an
approval about to expire, a queue message set aside) and is deduplicated by its key: while an
alert with that key is open, a repeat only counts and touches it. Only `apps.monitoring.services`
writes these rows; MetricCounter rows are written only by `apps.monitoring.counters`.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class SlaState(models.TextChoices):
    ON_TRACK = "on_track", "On track"
    AT_RISK = "at_risk", "At risk"
    BREACHED = "breached", "Breached"
    MET = "met", "Met"


class SlaStatus(models.Model):
    run = models.OneToOneField("runs.Run", on_delete=models.CASCADE, related_name="sla_status")
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=10, choices=SlaState.choices, default=SlaState.ON_TRACK)
    deadline = models.DateTimeField()
    predicted_finish = models.DateTimeField(null=True, blank=True)
    waiting_for_people_seconds = models.PositiveIntegerField(default=0, help_text="So far, waiting for approvals.")
    running_seconds = models.PositiveIntegerField(default=0, help_text="So far, not waiting for people.")
    predicted_wait_seconds = models.PositiveIntegerField(default=0,
                                                         help_text="Of the time left, expected waiting for people.")
    at_risk_since = models.DateTimeField(null=True, blank=True)
    breached_at = models.DateTimeField(null=True, blank=True)
    evaluated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["deadline"]
        indexes = [models.Index(fields=["state", "deadline"])]

    def __str__(self) -> str:
        return f"SLA of run {self.run_id}: {self.state}"


class MonitorSettings(models.Model):
    """How unusual a run must be, against this workflow's recent history, to raise an alert."""

    workflow = models.OneToOneField("workflows.Workflow", on_delete=models.CASCADE, related_name="monitor_settings")
    history_runs = models.PositiveIntegerField(default=20, help_text="How many recent successful runs to compare with.")
    min_history = models.PositiveIntegerField(default=5, help_text="No anomaly alerts until this many runs exist.")
    threshold = models.FloatField(default=3.5, help_text="Robust z-score (distance from the median in MADs) "
                                                         "beyond which a run is unusual.")
    check_duration = models.BooleanField(default=True)
    check_records = models.BooleanField(default=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"monitor of {self.workflow}"


class AlertKind(models.TextChoices):
    SLA_AT_RISK = "sla_at_risk", "SLA at risk"
    SLA_BREACH = "sla_breach", "SLA breached"
    ANOMALY = "anomaly", "Unusual run"
    RUN_PAUSED = "run_paused", "Run paused"
    APPROVAL_EXPIRING = "approval_expiring", "Approval about to expire"
    DEAD_LETTER = "dead_letter", "Queue message set aside"
    NO_CONSUMER = "no_consumer", "Queue without a worker"


class AlertState(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class Alert(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="alerts")
    workflow = models.ForeignKey("workflows.Workflow", null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="alerts")
    run = models.ForeignKey("runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    kind = models.CharField(max_length=20, choices=AlertKind.choices)
    dedup_key = models.CharField(max_length=300)
    state = models.CharField(max_length=8, choices=AlertState.choices, default=AlertState.OPEN)
    title = models.CharField(max_length=300)
    detail = models.JSONField(default=dict, blank=True)
    occurrences = models.PositiveIntegerField(default=1)
    opened_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Someone said they are on it; the alert stays open until resolved.
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["dedup_key"], condition=Q(state="open"),
                                               name="one_open_alert_per_key")]
        indexes = [models.Index(fields=["team", "state", "-last_seen_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.title}"


class MetricCounter(models.Model):
    """A monotonic count that any process adds to and /metrics reads (`apps.monitoring.counters`)."""

    name = models.CharField(max_length=100, primary_key=True)
    value = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"
