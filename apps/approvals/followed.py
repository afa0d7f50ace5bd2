"""Whether checkpoint decisions followed the assistant's suggestion (recorded on each Decision by
decide_checkpoint, see apps.knowledge.decision_record), for the knowledge page's rate over time."""

from apps.approvals.models import Decision


def followed_since(since) -> list[tuple]:
    """(decided_at, followed) of every decision taken since `since` at which the assistant offered
    something to follow (a known cause or a headline guess); followed is None when it cannot be told."""
    rows = (Decision.objects.filter(decided_at__gte=since, suggestions_shown__isnull=False)
            .values_list("decided_at", "followed_suggestion", "suggestions_shown"))
    return [(decided_at, followed) for decided_at, followed, shown in rows
            if shown.get("known_cause") or shown.get("headline")]
