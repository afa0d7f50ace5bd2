"""What starts runs without a person: schedules, webhooks, landing files, queue messages,
micro-batches, upstream workflows and backfills.

Every start goes through one ledger, TriggerEvent, unique per (workflow, source, dedup key):
a schedule slot, a webhook's Idempotency-Key, a file's path and sha256, a queue message id or
an upstream run id. A repeat of the same key finds the row and starts nothing, which is what
makes redelivery, restarts and overlapping ticks safe. Only `apps.triggers.services` writes
these rows, and `apps.triggers.dead_letters` the queue messages that keep failing (QueueDelivery,
DeadLetter).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class TriggerSource(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    WEBHOOK = "webhook", "Webhook"
    FILE = "file", "File arrival"
    QUEUE = "queue", "Queue message"
    UPSTREAM = "upstream", "Upstream workflow"
    BACKFILL = "backfill", "Backfill"


class TriggerKind(models.TextChoices):
    """The trigger kinds of the spec language (`triggers:` entries)."""

    SCHEDULE = "schedule", "Schedule"
    WEBHOOK = "webhook", "Webhook"
    FILE = "file", "File arrival"
    QUEUE = "queue", "Queue message"
    AFTER = "after", "After another workflow"


class BusinessCalendar(models.Model):
    """A platform-managed list of non-working days that schedules can follow (`calendar:`)."""

    slug = models.SlugField(unique=True)
    name = models.CharField(max_length=120)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Holiday(models.Model):
    calendar = models.ForeignKey(BusinessCalendar, on_delete=models.CASCADE, related_name="holidays")
    date = models.DateField()
    name = models.CharField(max_length=120)

    class Meta:
        ordering = ["calendar", "date"]
        constraints = [models.UniqueConstraint(fields=["calendar", "date"], name="unique_holiday_per_calendar")]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"


class CatchUp(models.TextChoices):
    SKIP = "skip", "Skip missed runs"
    ONCE = "once", "Run once for all missed slots"
    EACH = "each", "Run every missed slot"


class TriggerBinding(models.Model):
    """One trigger of a workflow's current version, kept in step by `services.sync_triggers`, so
    the tick, the scans, the consumers and the upstream receiver query rows instead of specs."""

    workflow = models.ForeignKey("workflows.Workflow", on_delete=models.CASCADE, related_name="trigger_bindings")
    position = models.PositiveIntegerField(help_text="Index of the trigger in the spec's `triggers`.")
    kind = models.CharField(max_length=16, choices=TriggerKind.choices)
    config = models.JSONField(help_text="The trigger's normalized body.")
    # What other rows look it up by: the upstream workflow's name (after), the connection (queue).
    match_name = models.CharField(max_length=200, blank=True, db_index=True)
    # Schedules: slots up to here were handled (started or skipped); the tick looks only after it.
    handled_until = models.DateTimeField(default=timezone.now)
    # A paused schedule starts nothing; resuming it skips the slots that fell in the pause.
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+")
    # Redis streams: the group of a new binding reads entries from this moment on, not older history.
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["workflow", "position"]
        constraints = [models.UniqueConstraint(fields=["workflow", "position"], name="unique_trigger_position")]
        indexes = [models.Index(fields=["kind", "match_name"])]

    def __str__(self) -> str:
        return f"{self.kind} trigger {self.position} of {self.workflow}"


class WebhookEndpoint(models.Model):
    """The URL (secret token) and signing secret of a workflow with a webhook trigger."""

    workflow = models.OneToOneField("workflows.Workflow", on_delete=models.CASCADE, related_name="webhook")
    token = models.CharField(max_length=64, unique=True, help_text="The secret part of the URL.")
    encrypted_signing_secret = models.TextField(editable=False)
    active = models.BooleanField(default=True)
    # Token bucket of the per-workflow rate limit.
    bucket_tokens = models.FloatField(null=True, blank=True, help_text="None until the first request: a full bucket.")
    bucket_updated_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"webhook of {self.workflow}"


class BatchState(models.TextChoices):
    OPEN = "open", "Collecting events"
    CLOSED = "closed", "Run started"


class EventBatch(models.Model):
    """Events of a batching trigger collected for one run; closed when it holds `max_items`
    events or at `closes_at` (`max_wait` after it opened), whichever comes first."""

    workflow = models.ForeignKey("workflows.Workflow", on_delete=models.CASCADE, related_name="event_batches")
    source = models.CharField(max_length=16, choices=TriggerSource.choices)
    state = models.CharField(max_length=8, choices=BatchState.choices, default=BatchState.OPEN)
    max_items = models.PositiveIntegerField(null=True, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    closes_at = models.DateTimeField(null=True, blank=True, help_text="When `max_wait` runs out, if set.")
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.CharField(max_length=16, blank=True, help_text="The limit that closed it: max_items or max_wait.")
    run = models.OneToOneField("runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="event_batch")

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [models.Index(fields=["state", "closes_at"])]

    def __str__(self) -> str:
        return f"batch {self.pk} of {self.workflow} ({self.state})"


class Backfill(models.Model):
    class State(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        CANCELLED = "cancelled", "Cancelled"

    workflow = models.ForeignKey("workflows.Workflow", on_delete=models.CASCADE, related_name="backfills")
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="+")
    start = models.DateTimeField()
    end = models.DateTimeField()
    state = models.CharField(max_length=12, choices=State.choices, default=State.RUNNING)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"backfill {self.pk} of {self.workflow}"


class TriggerEvent(models.Model):
    """One thing that happened and may start a run; the ledger of exactly-once starts."""

    workflow = models.ForeignKey("workflows.Workflow", on_delete=models.CASCADE, related_name="trigger_events")
    source = models.CharField(max_length=16, choices=TriggerSource.choices)
    dedup_key = models.CharField(max_length=300)
    payload = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    batch = models.ForeignKey(EventBatch, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    backfill = models.ForeignKey(Backfill, null=True, blank=True, on_delete=models.CASCADE, related_name="slots")
    slot_at = models.DateTimeField(null=True, blank=True, help_text="The schedule slot, for schedules and backfills.")
    run = models.ForeignKey("runs.Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="trigger_events")
    error = models.TextField(blank=True, help_text="Why no run was started for it.")

    class Meta:
        ordering = ["received_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["workflow", "source", "dedup_key"], name="unique_trigger_event"),
        ]
        indexes = [models.Index(fields=["backfill", "run"])]

    def __str__(self) -> str:
        return f"{self.source} {self.dedup_key} of {self.workflow}"


class FileSeen(models.Model):
    """What the landing scan last saw of a file; a file starts a run once it is stable."""

    workflow = models.ForeignKey("workflows.Workflow", on_delete=models.CASCADE, related_name="files_seen")
    path = models.CharField(max_length=1000, help_text="Relative to the landing root.")
    size = models.PositiveBigIntegerField()
    mtime_ns = models.BigIntegerField()
    first_seen_at = models.DateTimeField(default=timezone.now)
    event = models.OneToOneField(TriggerEvent, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["workflow", "path"]
        constraints = [models.UniqueConstraint(fields=["workflow", "path"], name="unique_file_per_workflow")]

    def __str__(self) -> str:
        return self.path


class UpstreamShare(models.Model):
    """The upstream workflow's team lets `team`'s workflows start after it (`after:` across teams)."""

    workflow = models.ForeignKey("workflows.Workflow", on_delete=models.CASCADE, related_name="shared_with")
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workflow", "team"], name="unique_upstream_share")]

    def __str__(self) -> str:
        return f"{self.workflow} shared with {self.team}"


class QueueDelivery(models.Model):
    """A queue message delivered again, or whose handling failed: how many deliveries so far and
    the last error. Kept only while the message is unsettled: removed once it is recorded or set
    aside, so a healthy queue writes nothing here."""

    workflow = models.ForeignKey("workflows.Workflow", on_delete=models.CASCADE, related_name="+")
    message_key = models.CharField(max_length=300)
    deliveries = models.PositiveIntegerField(default=1)
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workflow", "message_key"], name="unique_queue_delivery")]

    def __str__(self) -> str:
        return f"{self.message_key} delivered {self.deliveries} time(s)"


class DeadLetterState(models.TextChoices):
    SET_ASIDE = "set_aside", "Set aside"
    REPLAYED = "replayed", "Replayed"


class DeadLetter(models.Model):
    """A queue message whose handling failed FLOWDECK_TRIGGER_MAX_DELIVERIES times: acknowledged
    on the broker so it stops blocking the queue, kept here with its body to be replayed."""

    workflow = models.ForeignKey("workflows.Workflow", on_delete=models.CASCADE, related_name="dead_letters")
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="+")
    source = models.CharField(max_length=16, help_text="The connection kind: rabbitmq or redis.")
    connection = models.CharField(max_length=200)
    queue = models.CharField(max_length=300, help_text="The RabbitMQ queue or Redis stream.")
    message_key = models.CharField(max_length=300, help_text="Its key in the trigger ledger.")
    body = models.TextField(help_text="The message body (a Redis entry's fields as JSON), as received.")
    payload = models.JSONField(null=True, blank=True, help_text="The body as a JSON object, when it is one.")
    error = models.TextField()
    deliveries = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=DeadLetterState.choices, default=DeadLetterState.SET_ASIDE)
    created_at = models.DateTimeField(default=timezone.now)
    replayed_at = models.DateTimeField(null=True, blank=True)
    replayed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    replay_outcome = models.CharField(max_length=16, blank=True, help_text="started, repeat or refused.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["workflow", "state"])]

    def __str__(self) -> str:
        return f"dead letter {self.message_key} of {self.workflow}"
