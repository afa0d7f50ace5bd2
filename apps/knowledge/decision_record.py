"""What the assistant showed a person deciding a failure checkpoint, and whether they followed it,
kept beside their decision (apps.approvals stores it on the Decision row and in the audit log).

What was shown is the ranking stored for the failure's incident when the decision was taken (the
one its checkpoint and incident pages rendered): its snapshot, the known cause or the model's
headline guess with its confidence, the next hypotheses, and a root cause confirmed by then.

Followed means:
  known cause    the decision is a retry: the fix is made outside the checkpoint (a connection
                 added, a host allowed), then the step runs again; skip, compensate or abort
                 did not follow it;
  headline guess the root cause confirmed on the incident by the time of the decision is the
                 headline's category; another confirmed cause did not follow it; with none
                 confirmed it cannot be told (None), and the rate leaves such decisions out;
  otherwise      nothing to follow (not sure, no ranking yet): None.
"""

from dataclasses import dataclass

from apps.incidents.access import incident_of_step_run
from apps.knowledge.confirmation import confirmed_cause
from apps.knowledge.models import SuggestionSnapshot

RETRY = "retry"  # approvals.models.Verdict.RETRY, by value: this app does not import approvals
HYPOTHESES_KEPT = 3


@dataclass
class ShownAtDecision:
    shown: dict | None  # None: no incident or no ranking was there to show
    followed: bool | None


def suggestions_at_decision(step_run_id: int, choice: str) -> ShownAtDecision:
    incident = incident_of_step_run(step_run_id)
    snapshot = SuggestionSnapshot.objects.filter(incident=incident).first() if incident else None
    if snapshot is None or not snapshot.suggestions:
        return ShownAtDecision(None, None)
    ranking = snapshot.suggestions
    confidence = {h["category"]: h["confidence"] for h in ranking["hypotheses"]}
    cause = confirmed_cause(incident)
    shown = {"snapshot": snapshot.pk, "incident": incident.pk, "ranked_at": snapshot.created_at.isoformat(),
             "known_cause": None, "headline": None, "sure": ranking["sure"],
             # The model's order (before any confirmation put the confirmed cause first).
             "hypotheses": [{"category": c, "confidence": round(confidence.get(c, 0.0), 4)}
                            for c in snapshot.categories[:HYPOTHESES_KEPT] if c in confidence],
             "confirmed": cause.category if cause else ""}
    known = ranking.get("known_cause")
    if known:
        shown["known_cause"] = {"reason": known["reason"], "category": known["category"], "title": known["title"]}
        followed = choice == RETRY
        how = "retried after the known cause's fix" if followed else f"chose {choice}, not the known cause's fix"
    elif ranking["sure"] and snapshot.categories:
        headline = snapshot.categories[0]
        names = {h["category"]: h["name"] for h in ranking["hypotheses"]}
        shown["headline"] = {"category": headline, "name": names.get(headline, headline),
                             "confidence": round(confidence.get(headline, 0.0), 4)}
        if cause is None:
            followed, how = None, "no root cause was confirmed by the decision"
        else:
            followed = cause.category == headline
            how = (f"confirmed the headline ({headline}) as the root cause" if followed
                   else f"confirmed {cause.category}, not the headline ({headline})")
    else:
        followed, how = None, "no headline guess or known cause was shown"
    shown["followed"], shown["followed_because"] = followed, how
    return ShownAtDecision(shown, followed)
