"""Domain functions of the knowledge app: feedback, snapshots, summaries and rebuild requests.

Each writes an audit event. Index work is handed to Celery after the transaction commits.
"""

from django.db import transaction
from django.utils import timezone

from apps.audit.log import record
from apps.knowledge.fusion import weights_from_meta
from apps.knowledge.models import Feedback, IndexBuild, SuggestionSnapshot, TargetKind, Verdict
from apps.knowledge.ranking import FEATURES


class KnowledgeError(Exception):
    """A knowledge action that is not allowed."""


@transaction.atomic
def give_feedback(user, incident, *, target_kind: str, target_ref: str, verdict: str) -> Feedback:
    """Store one person's verdict on one suggestion (a later verdict replaces theirs)."""
    if target_kind not in TargetKind.values or verdict not in Verdict.values:
        raise KnowledgeError("Unknown feedback; use the buttons beside a suggestion.")
    if verdict == Verdict.ROOT_CAUSE and target_kind == TargetKind.RUNBOOK:
        raise KnowledgeError("A runbook section cannot be a root cause; mark it helpful instead.")
    from apps.knowledge import incident_ranking

    category_rank, headline = None, ""
    if verdict == Verdict.ROOT_CAUSE:
        category = target_ref if target_kind == TargetKind.HYPOTHESIS else _category_of_incident(target_ref)
        category_rank, headline = _rank_shown(incident, category), headline_shown(incident)
    previous = Feedback.objects.filter(incident=incident, user=user, target_kind=target_kind,
                                       target_ref=str(target_ref)).values_list("verdict", flat=True).first()
    key_before = incident_ranking.dependencies(incident)
    feedback, _ = Feedback.objects.update_or_create(
        incident=incident, user=user, target_kind=target_kind, target_ref=str(target_ref),
        defaults={"verdict": verdict, "category_rank": category_rank, "headline": headline,
                  "created_at": timezone.now()})
    if Verdict.ROOT_CAUSE in (verdict, previous):
        incident_ranking.show_confirmation(incident, key_before)
    record(user, "suggestion.feedback", feedback, team=incident.team, after={
        "incident": incident.pk, "target_kind": target_kind, "target_ref": str(target_ref), "verdict": verdict})
    return feedback


def headline_shown(incident) -> str:
    """The category of the headline guess the incident's stored ranking makes ("" when it makes
    none: not sure, or a known cause), in the model's own order, before any confirmation."""
    snapshot = SuggestionSnapshot.objects.filter(incident=incident).first()
    if snapshot is None or not snapshot.categories or not snapshot.suggestions.get("sure") \
            or snapshot.suggestions.get("known_cause"):
        return ""
    return snapshot.categories[0]


def _category_of_incident(incident_id: str) -> str | None:
    from apps.incidents.models import Incident

    incident = Incident.objects.filter(pk=incident_id).select_related("root_cause_category").first()
    return incident.root_cause_category.slug if incident and incident.root_cause_category else None


def _rank_shown(incident, category: str | None) -> int | None:
    snapshot = SuggestionSnapshot.objects.filter(incident=incident).first()
    if snapshot is None or category not in snapshot.categories:
        return None
    return snapshot.categories.index(category) + 1


def record_resolution_outcome(incident) -> None:
    """When an incident is resolved, its category is the confirmed root cause: note where it ranked."""
    if incident.root_cause_category is None or incident.resolved_by is None:
        return
    with transaction.atomic():
        give_feedback(incident.resolved_by, incident, target_kind=TargetKind.HYPOTHESIS,
                      target_ref=incident.root_cause_category.slug, verdict=Verdict.ROOT_CAUSE)


def top3_confirmed_rate() -> tuple[float | None, int]:
    """Share of confirmed root causes that were among the top 3 hypotheses shown, and how many there were."""
    confirmed = Feedback.objects.filter(verdict=Verdict.ROOT_CAUSE, target_kind=TargetKind.HYPOTHESIS)
    latest = {}
    for incident_id, rank in confirmed.order_by("created_at").values_list("incident_id", "category_rank"):
        latest[incident_id] = rank
    if not latest:
        return None, 0
    hits = sum(1 for rank in latest.values() if rank is not None and rank <= 3)
    return hits / len(latest), len(latest)


@transaction.atomic
def request_rebuild(user) -> None:
    from apps.knowledge.tasks import rebuild_index

    record(user, "knowledge.rebuild_requested", object_type="knowledge.index", object_id="default",
           after={"requested_at": timezone.now().isoformat()})
    transaction.on_commit(lambda: rebuild_index.delay(user.pk))


def last_build() -> IndexBuild | None:
    return IndexBuild.objects.filter(finished_at__isnull=False).first()


def learned_weights(meta: dict) -> list[tuple[str, float]]:
    """The evidence weights suggestions use (feature, weight), for the admin page; empty until learned."""
    weights = weights_from_meta(meta)
    return [] if weights is None else list(zip(FEATURES, weights.tolist()))
