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
    git_source = models.ForeignKey("GitSource", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="workflows", help_text="Set when Git is the truth: read-only here.")
    git_path = models.CharField(max_length=500, blank=True, help_text="The file's path in the repository.")

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
    # Filled when a Git sync made the version: the commit it came from.
    commit_sha = models.CharField(max_length=40, blank=True)
    commit_author = models.CharField(max_length=200, blank=True)
    commit_message = models.CharField(max_length=500, blank=True)

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


class SyncStatus(models.TextChoices):
    NEVER = "never", "never synced"
    OK = "ok", "in sync"
    PARTIAL = "partial", "some files refused"
    FAILED = "failed", "failed"


class GitSource(models.Model):
    """A Git repository folder whose YAML files are the truth for some of a team's workflows."""

    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="git_sources")
    url = models.CharField(max_length=500, help_text="https://, ssh:// or git@ URL, or a local path.")
    branch = models.CharField(max_length=200, default="main")
    folder = models.CharField(max_length=300, blank=True, help_text="Folder of the YAML files; empty: the root.")
    webhook_token_sha256 = models.CharField(max_length=64, help_text="Only the hash: the token is shown once.")
    # GitHub sends no token but signs each push with it (X-Hub-Signature-256): checking that
    # needs the token itself, so it is also kept encrypted (apps.catalog.secrets).
    webhook_token_encrypted = models.TextField(blank=True, help_text="The token, encrypted: checks GitHub's signatures.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # A sync claims the source by setting this (compare-and-swap), so two never share the checkout.
    sync_started_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_commit_sha = models.CharField(max_length=40, blank=True)
    last_status = models.CharField(max_length=10, choices=SyncStatus.choices, default=SyncStatus.NEVER)
    last_result = models.JSONField(default=dict, blank=True, help_text="Per file: outcome, version, errors.")

    class Meta:
        ordering = ["team__name", "url", "branch", "folder"]
        constraints = [models.UniqueConstraint(fields=["team", "url", "branch", "folder"],
                                               name="unique_git_source_in_team")]

    def __str__(self) -> str:
        return f"{self.url}@{self.branch}:{self.folder or '/'}"

    def file_url(self, path: str) -> str:
        """A browser link to `path` at the source (GitHub, GitLab and Gitea share /blob/), or ""."""
        if not self.url.startswith("https://"):
            return ""
        return f"{self.url.removesuffix('.git').rstrip('/')}/blob/{self.branch}/{path}"
