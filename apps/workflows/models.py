"""Workflows and their immutable versions.

A workflow belongs to a team. Every saved change is a new WorkflowVersion holding the YAML as
written and its parsed, normalized form (`spec`, the shape documented in
`apps.workflows.spec.normalize`); a run pins the version it ran, so editing never changes history.
Everything outside the spec package reads a version through its typed, cached `plan`.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.workflows.plan import Plan, plan_for


class Workflow(models.Model):
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="workflows")
    name = models.SlugField(max_length=100, help_text="The spec's `name`; unique within the team.")
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    current_version = models.ForeignKey(
        "WorkflowVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["team__name", "name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="unique_workflow_name_in_team")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class WorkflowVersion(models.Model):
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    source = models.TextField(help_text="The YAML exactly as the author wrote it.")
    spec = models.JSONField(help_text="The validated, normalized form the engine runs.")
    source_sha256 = models.CharField(max_length=64)
    message = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["workflow", "-number"]
        constraints = [models.UniqueConstraint(fields=["workflow", "number"], name="unique_version_number")]

    def __str__(self) -> str:
        return f"{self.workflow} v{self.number}"

    @property
    def team(self):
        return self.workflow.team

    @property
    def plan(self) -> Plan:
        """The typed view of `spec`, built once per process (a version never changes)."""
        return plan_for(self.pk, None if "spec" in self.get_deferred_fields() else self.spec)
