"""Runs, step runs, attempts and what an attempt leaves behind (log lines, side effects, datasets).

A Run executes one pinned WorkflowVersion with its inputs. Each step of the spec has one StepRun
(created in bulk when the run is created); every try of a step, and every compensation, is a
StepAttempt with its own idempotency key. Only `apps.runs.engine` changes states; workers write
liveness data (heartbeats, log lines, effects) through `apps.runs.context`.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Trigger(models.TextChoices):
    MANUAL = "manual", "Manual"
    API = "api", "API"
    SCHEDULE = "schedule", "Schedule"
    WEBHOOK = "webhook", "Webhook"
    FILE = "file", "File arrival"
    UPSTREAM = "upstream", "Upstream workflow"
    BACKFILL = "backfill", "Backfill"
    QUEUE = "queue", "Queue message"


class RunState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting for approval"
    PAUSED = "paused", "Paused (failed, waiting for a decision)"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    COMPENSATING = "compensating", "Compensating"


# Runs holding a slot of their workflow's `concurrency`.
ACTIVE_RUN_STATES = (RunState.RUNNING, RunState.WAITING, RunState.PAUSED, RunState.COMPENSATING)
FINISHED_RUN_STATES = (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


class StepState(models.TextChoices):
    PENDING = "pending", "Pending"
    WAITING_APPROVAL = "waiting_approval", "Waiting for approval"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"
    COMPENSATED = "compensated", "Compensated"


class SkipReason(models.TextChoices):
    CONDITION = "condition", "Its `when` condition was false"
    UPSTREAM_SKIPPED = "upstream_skipped", "Every step it needs was skipped"
    OPERATOR = "operator", "An operator skipped it"
    REJECTED = "rejected", "Rejected at its approval (on_reject: skip)"
    REJECTED_CONTINUE = "rejected_continue", "Rejected at its approval; what needs it runs (on_reject: continue)"


# Skips after which the steps that need it still run (others skip them too).
SKIPS_KEEPING_DOWNSTREAM = (SkipReason.OPERATOR, SkipReason.REJECTED_CONTINUE)


class AttemptKind(models.TextChoices):
    STEP = "step", "Step"
    COMPENSATION = "compensation", "Compensation"


class AttemptState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Run(models.Model):
    workflow = models.ForeignKey("workflows.Workflow", on_delete=models.PROTECT, related_name="runs")
    version = models.ForeignKey("workflows.WorkflowVersion", on_delete=models.PROTECT, related_name="runs")
    # Denormalized from the workflow so scoping never needs a join.
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="runs")
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.QUEUED)
    inputs = models.JSONField(default=dict, blank=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.MANUAL)
    trigger_detail = models.JSONField(default=dict, blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    failure_summary = models.TextField(blank=True, help_text="Why the run failed or paused, in one line.")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["workflow", "state"]),
            # A team's runs newest first; with what the dashboard's days and the workflows' rates
            # count (state, duration), so a window of days is read from the index alone (PostgreSQL):
            # the window's runs lie all over the table (13,700 heap pages for one team at 10M step runs).
            models.Index(fields=["team", "-created_at"], name="run_team_newest_first",
                         include=["id", "state", "started_at", "finished_at"]),
            models.Index(fields=["state", "created_at"]),
            # The runs list pages newest first across every run a person may see.
            models.Index(fields=["-created_at", "-id"], name="run_newest_first"),
            # A workflow's last runs (its history bars, charts and percentiles) as an index range.
            models.Index(fields=["workflow", "-created_at", "-id"], name="run_workflow_newest_first",
                         include=["state", "started_at", "finished_at"]),
            # The few runs not yet finished (home's "SLA at risk" panel), without reading the history.
            models.Index(fields=["id"], name="run_unfinished", condition=~models.Q(state__in=FINISHED_RUN_STATES)),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED_RUN_STATES


class StepRun(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="step_runs")
    step_id = models.CharField(max_length=100)
    position = models.PositiveIntegerField(help_text="Order of the step in the spec.")
    step_type = models.CharField(max_length=100)
    state = models.CharField(max_length=20, choices=StepState.choices, default=StepState.PENDING)
    skip_reason = models.CharField(max_length=20, choices=SkipReason.choices, blank=True)
    attempt = models.PositiveIntegerField(default=0, help_text="Number of the latest step attempt (0: none yet).")
    # Automatic retries count from here; a manual retry starts a fresh budget.
    retry_budget_from = models.PositiveIntegerField(default=1)
    params_override = models.JSONField(null=True, blank=True, help_text="Parameters an operator set on retry.")
    output = models.JSONField(null=True, blank=True)
    # A gate's outcome ("approved", "rejected" or a named option) and what its approver filled in:
    # downstream steps read them as `steps.<id>.decision` and under `steps.<id>.output`.
    decision = models.CharField(max_length=64, blank=True)
    decision_input = models.JSONField(null=True, blank=True)
    progress = models.JSONField(null=True, blank=True, help_text="What the running step last reported.")
    reused_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                    help_text="The step run of an earlier run whose output a rerun kept.")
    error_type = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "step_id"], name="unique_step_in_run")]
        indexes = [models.Index(fields=["run", "state"])]

    def __str__(self) -> str:
        return f"{self.step_id} of run {self.run_id} ({self.state})"


class StepAttempt(models.Model):
    step_run = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="attempts")
    kind = models.CharField(max_length=16, choices=AttemptKind.choices, default=AttemptKind.STEP)
    number = models.PositiveIntegerField()
    idempotency_key = models.CharField(max_length=200, unique=True)
    step_type = models.CharField(max_length=100)
    queue = models.CharField(max_length=100)
    params = models.JSONField(default=dict, blank=True)
    timeout_seconds = models.PositiveIntegerField()
    state = models.CharField(max_length=16, choices=AttemptState.choices, default=AttemptState.QUEUED)
    queued_at = models.DateTimeField(default=timezone.now, help_text="When its message was last sent.")
    not_before = models.DateTimeField(default=timezone.now, help_text="A retry's backoff ends here.")
    deliveries = models.PositiveIntegerField(default=0, help_text="How many times a worker claimed it.")
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True, help_text="hostname:pid of the worker that ran it.")
    output = models.JSONField(null=True, blank=True)
    output_artifact = models.CharField(max_length=500, blank=True,
                                       help_text="Path under ARTIFACT_DIR of an output too large to keep inline.")
    error_type = models.CharField(max_length=200, blank=True)
    error_message = models.TextField(blank=True)
    error_signature = models.CharField(max_length=500, blank=True, db_index=True,
                                       help_text="The error with ids, numbers and paths removed, for grouping.")
    # Set when Flowdeck's own machinery knows the cause (apps.catalog.registry.Reason), with what
    # its fix needs; db_default because the engine inserts attempts in plain SQL (statements.py).
    error_reason = models.CharField(max_length=40, blank=True, default="", db_default="")
    error_detail = models.JSONField(null=True, blank=True)
    # Under `retries: {when: transient}`: whether this failure was retried, and why
    # (apps.knowledge.transience.RetryVerdict, with "retried").
    retry_verdict = models.JSONField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    records_in = models.PositiveBigIntegerField(default=0)
    records_out = models.PositiveBigIntegerField(default=0)
    records_rejected = models.PositiveBigIntegerField(default=0)
    log_lines_dropped = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["step_run", "kind", "number"]
        constraints = [
            models.UniqueConstraint(fields=["step_run", "kind", "number"], name="unique_attempt_number"),
        ]
        indexes = [
            models.Index(fields=["state", "heartbeat_at"]),
            models.Index(fields=["state", "queued_at"]),
            # Other runs failing with the same error around a failure (apps.runs.investigation), as
            # a range: by the signature alone it read every failure of it (70,000 at 10M step runs).
            # Only failures have a signature, so the rest of the attempts stay out of it.
            models.Index(fields=["error_signature", "ended_at"], name="attempt_signature_ended",
                         condition=~models.Q(error_signature="")),
        ]

    def __str__(self) -> str:
        return f"{self.kind} attempt {self.number} of {self.step_run}"

    @property
    def is_timeout(self) -> bool:
        return self.error_type == "Timeout"


class StepLogLine(models.Model):
    attempt = models.ForeignKey(StepAttempt, on_delete=models.CASCADE, related_name="log_lines")
    at = models.DateTimeField(default=timezone.now)
    level = models.CharField(max_length=10, default="info")
    message = models.TextField()
    fields = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["attempt", "at", "id"]

    def __str__(self) -> str:
        return f"[{self.level}] {self.message[:60]}"


class EffectLedger(models.Model):
    """A side effect a step reported; unique per idempotency key so a repeat is detected."""

    idempotency_key = models.CharField(max_length=200)
    kind = models.CharField(max_length=100)
    target = models.CharField(max_length=500)
    detail = models.JSONField(default=dict, blank=True)
    step_run = models.ForeignKey(StepRun, on_delete=models.CASCADE, related_name="effects")
    attempt = models.ForeignKey(StepAttempt, on_delete=models.CASCADE, related_name="effects")
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["recorded_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["idempotency_key", "kind", "target"], name="unique_effect_per_key"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.target}"


class DatasetDirection(models.TextChoices):
    INPUT = "in", "Read"
    OUTPUT = "out", "Written"


class StepDataset(models.Model):
    """A dataset a step read or wrote (lineage for pages and impact analysis)."""

    attempt = models.ForeignKey(StepAttempt, on_delete=models.CASCADE, related_name="datasets")
    direction = models.CharField(max_length=3, choices=DatasetDirection.choices)
    uri = models.CharField(max_length=1000)
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["attempt", "direction", "uri"]
        constraints = [
            models.UniqueConstraint(fields=["attempt", "direction", "uri"], name="unique_dataset_per_attempt"),
        ]

    def __str__(self) -> str:
        return f"{self.direction} {self.uri}"
