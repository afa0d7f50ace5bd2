"""Incidents: failures worth a person's attention, opened from runs, by hand or imported.

An incident holds the failure context (workflow, version, step type, inputs, error, log tail),
an owner and a status; on resolution a root-cause category, description and fix. Resolved
incidents are what the troubleshooting assistant learns from. Imported incidents may have no
team: they are shared history, readable by every signed-in person (see `apps.incidents.access`).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class RootCauseCategory(models.Model):
    """One label of the root-cause taxonomy. Platform admins manage it; imports may add labels."""

    slug = models.SlugField(max_length=80, unique=True)
    name = models.CharField(max_length=120)
    # Folded into the ranking: a new failure can match a category with no similar past incident.
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "root-cause categories"

    def __str__(self) -> str:
        return self.name


class IncidentStatus(models.TextChoices):
    OPEN = "open", "Open"
    INVESTIGATING = "investigating", "Investigating"
    RESOLVED = "resolved", "Resolved"


class IncidentSource(models.TextChoices):
    RUN_FAILURE = "run_failure", "Run failure"
    MANUAL = "manual", "Opened by hand"
    IMPORTED = "imported", "Imported history"


class Incident(models.Model):
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.PROTECT,
                             related_name="incidents", help_text="Empty for shared, imported history.")
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=IncidentStatus.choices, default=IncidentStatus.OPEN)
    source = models.CharField(max_length=16, choices=IncidentSource.choices, default=IncidentSource.MANUAL)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="owned_incidents")
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")

    # Failure context. Runs are referenced by id so incidents outlive run retention.
    workflow = models.ForeignKey("workflows.Workflow", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="incidents")
    workflow_version = models.ForeignKey("workflows.WorkflowVersion", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+")
    run_id = models.BigIntegerField(null=True, blank=True)
    step_id = models.CharField(max_length=100, blank=True)
    step_type = models.CharField(max_length=100, blank=True)
    inputs = models.JSONField(default=dict, blank=True)
    error_type = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    error_signature = models.CharField(max_length=500, blank=True, db_index=True)
    # A failure Flowdeck itself understands (apps.catalog.registry.Reason) and what its fix needs.
    error_reason = models.CharField(max_length=40, blank=True)
    error_detail = models.JSONField(default=dict, blank=True)
    log_tail = models.TextField(blank=True)
    occurrences = models.PositiveIntegerField(default=1)

    # Resolution.
    root_cause_category = models.ForeignKey(RootCauseCategory, null=True, blank=True, on_delete=models.PROTECT,
                                            related_name="incidents")
    root_cause_description = models.TextField(blank=True)
    resolution = models.TextField(blank=True, help_text="What fixed it.")
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)

    occurred_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    source_url = models.URLField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-pk"]
        indexes = [models.Index(fields=["status", "team"]), models.Index(fields=["step_id", "error_signature"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    @property
    def is_resolved(self) -> bool:
        return self.status == IncidentStatus.RESOLVED


class IncidentOccurrence(models.Model):
    """One failure linked to an incident: the first, and every recurrence while it stays open."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="occurrence_log")
    run_id = models.BigIntegerField(null=True, blank=True)
    step_run_id = models.BigIntegerField(null=True, blank=True)
    error_message = models.TextField(blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-pk"]
