"""Knowledge: runbooks split into sections, operators' feedback on suggestions, what was shown,
LLM summaries, index builds and evaluation results. The vectors live on disk (`index.py`)."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class Runbook(models.Model):
    path = models.CharField(max_length=300, unique=True, help_text="Relative to runbooks/.")
    title = models.CharField(max_length=300)
    category = models.SlugField(max_length=80, blank=True, help_text="Root-cause category it is written for.")
    content_hash = models.CharField(max_length=64)
    body = models.TextField()
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class RunbookSection(models.Model):
    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="sections")
    anchor = models.SlugField(max_length=200)
    heading = models.CharField(max_length=300)
    body = models.TextField()
    position = models.PositiveIntegerField()
    content_hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["runbook", "position"]
        constraints = [models.UniqueConstraint(fields=["runbook", "anchor"], name="unique_section_anchor")]

    def __str__(self) -> str:
        return f"{self.runbook.title} › {self.heading}"


class Verdict(models.TextChoices):
    HELPFUL = "helpful", "Helpful"
    NOT_HELPFUL = "not_helpful", "Not helpful"
    ROOT_CAUSE = "root_cause", "This was the root cause"


class TargetKind(models.TextChoices):
    HYPOTHESIS = "hypothesis", "Root-cause hypothesis"
    INCIDENT = "incident", "Similar incident"
    RUNBOOK = "runbook", "Runbook section"


class Feedback(models.Model):
    """One person's verdict on one suggestion shown for one incident (their latest counts)."""

    incident = models.ForeignKey("incidents.Incident", on_delete=models.CASCADE, related_name="suggestion_feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    target_kind = models.CharField(max_length=16, choices=TargetKind.choices)
    # A category slug, an incident id or a runbook section id, by target_kind.
    target_ref = models.CharField(max_length=100)
    verdict = models.CharField(max_length=16, choices=Verdict.choices)
    # Rank of the confirmed category among the hypotheses shown (for the top-3 rate), if any.
    category_rank = models.PositiveIntegerField(null=True, blank=True)
    # A root cause: the headline guess shown for the incident then (blank: none was sure enough,
    # or a known cause was shown), so the admin page can tell how often the headline was right.
    headline = models.SlugField(max_length=80, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["incident", "user", "target_kind", "target_ref"],
                                               name="one_verdict_per_person_and_suggestion")]


class SuggestionSnapshot(models.Model):
    """The one ranking of an incident's failure that every page shows (apps.knowledge.incident_ranking),
    kept with the key of what it depends on; its categories measure later whether the real cause
    was near the top."""

    incident = models.OneToOneField("incidents.Incident", on_delete=models.CASCADE, related_name="suggestion_snapshot")
    categories = models.JSONField(default=list, help_text="Category slugs, best first.")
    dependencies = models.CharField(max_length=64, blank=True, help_text="Hash of what the ranking depends on.")
    suggestions = models.JSONField(default=dict, blank=True, help_text="The ranking (suggest.Suggestions).")
    created_at = models.DateTimeField(default=timezone.now)


class SummaryStatus(models.TextChoices):
    PENDING = "pending", "Being written"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    UNAVAILABLE = "unavailable", "No LLM configured"


class LlmSummary(models.Model):
    """The optional LLM summary of an incident, cached until its evidence changes."""

    incident = models.OneToOneField("incidents.Incident", on_delete=models.CASCADE, related_name="llm_summary")
    status = models.CharField(max_length=16, choices=SummaryStatus.choices, default=SummaryStatus.PENDING)
    evidence_hash = models.CharField(max_length=64)
    text = models.TextField(blank=True)
    citations = models.JSONField(default=list)
    error = models.CharField(max_length=500, blank=True)
    model = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)


class IndexBuild(models.Model):
    """One full rebuild or incremental update of the index."""

    class Kind(models.TextChoices):
        FULL = "full", "Full rebuild"
        INCREMENTAL = "incremental", "Incremental update"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    documents = models.PositiveIntegerField(default=0)
    embedded = models.PositiveIntegerField(default=0, help_text="Texts that were not in the embedding cache.")
    model = models.CharField(max_length=200, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")

    class Meta:
        ordering = ["-started_at"]


class EvaluationResult(models.Model):
    dataset = models.CharField(max_length=300)
    mode = models.CharField(max_length=16)
    folds = models.PositiveIntegerField()
    incidents = models.PositiveIntegerField()
    top1 = models.FloatField()
    top3 = models.FloatField()
    mrr = models.FloatField()
    same_category_in_top5 = models.FloatField()
    baseline_top1 = models.FloatField()
    # Calibration and the headline guess at the threshold in use (None: recorded before they were).
    ece = models.FloatField(null=True, blank=True, help_text="Expected calibration error of the headline.")
    threshold = models.FloatField(null=True, blank=True)
    headline_precision = models.FloatField(null=True, blank=True, help_text="Right headline guesses / guesses made.")
    coverage = models.FloatField(null=True, blank=True, help_text="Share of failures given a headline guess.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
