"""A root cause a person confirmed, in the incident's own ranking, at once.

An operator's "This was the root cause" (on a hypothesis, or on a similar incident, whose
category it names) and an incident resolved with a category are facts about this failure: its
list shows that cause first, marked as confirmed and with the confidence the model had given it,
from the moment it is said, on every page (the stored ranking is rewritten, no model needed).
Other incidents' rankings take the verdict in through their neighbours' weights
(learning.feedback_weights) and the next fit takes it as a label (learning.learn_fusion).
"""

from dataclasses import dataclass

from apps.incidents.models import Incident, RootCauseCategory
from apps.knowledge.models import Feedback, TargetKind, Verdict


@dataclass
class ConfirmedCause:
    category: str
    similar_incident: int | None = None  # the similar incident marked as the root cause, if that is how


def confirmed_cause(incident: Incident) -> ConfirmedCause | None:
    """The incident's resolved category, else the latest root-cause verdict given on it."""
    if incident.root_cause_category_id:
        return ConfirmedCause(RootCauseCategory.objects.get(pk=incident.root_cause_category_id).slug)
    latest = (Feedback.objects.filter(incident=incident, verdict=Verdict.ROOT_CAUSE)
              .exclude(target_kind=TargetKind.RUNBOOK).order_by("-created_at", "-pk").first())
    if latest is None:
        return None
    if latest.target_kind == TargetKind.HYPOTHESIS:
        return ConfirmedCause(latest.target_ref)
    similar = (Incident.objects.filter(pk=int(latest.target_ref)).values_list("root_cause_category__slug", flat=True)
               .first() if latest.target_ref.isdigit() else None)
    return ConfirmedCause(similar, int(latest.target_ref)) if similar else None


def with_confirmation(suggestions, cause: ConfirmedCause | None, model_order: list[str] | None = None):
    """`suggestions` with the confirmed cause first (added when the model had not ranked it) and
    the similar incident that named it first among the similar ones. `model_order` (the model's
    categories, best first) undoes an earlier confirmation first."""
    from apps.knowledge.suggest import Hypothesis

    hypotheses = suggestions.hypotheses
    if model_order is not None:
        position = {category: rank for rank, category in enumerate(model_order)}
        hypotheses = sorted((h for h in hypotheses if h.category in position), key=lambda h: position[h.category])
    suggestions.hypotheses, suggestions.confirmed = hypotheses, ""
    if cause is None:
        return suggestions
    suggestions.confirmed = cause.category
    if suggestions.known_cause is None:
        ranked = [h for h in hypotheses if h.category == cause.category]
        if not ranked:
            name = RootCauseCategory.objects.filter(slug=cause.category).values_list("name", flat=True).first()
            ranked = [Hypothesis(category=cause.category, name=name or cause.category.replace("-", " "),
                                 confidence=0.0)]
        suggestions.hypotheses = ranked + [h for h in hypotheses if h.category != cause.category]
    if cause.similar_incident is not None:
        similar = suggestions.similar_incidents
        suggestions.similar_incidents = ([s for s in similar if s.id == cause.similar_incident]
                                         + [s for s in similar if s.id != cause.similar_incident])
    return suggestions
