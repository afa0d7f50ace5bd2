"""How the suggestions fare in practice, week by week, for the knowledge page: how often the
headline guess was the root cause people confirmed, and how often a decision at a checkpoint
followed what the assistant showed (apps.knowledge.decision_record defines "followed")."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.utils import timezone

from apps.approvals.followed import followed_since
from apps.incidents.models import Incident
from apps.knowledge.models import EvaluationResult, Feedback, TargetKind, Verdict

WEEKS = 8


@dataclass
class Week:
    start: date
    headlines: int = 0  # incidents whose root cause was confirmed after a headline guess was shown
    headline_right: int = 0  # ... and it was the headline's category
    decisions: int = 0  # checkpoint decisions where following could be told
    followed: int = 0
    untold: int = 0  # decisions after a headline guess with no root cause confirmed by then

    @property
    def headline_rate(self) -> float | None:
        return self.headline_right / self.headlines if self.headlines else None

    @property
    def followed_rate(self) -> float | None:
        return self.followed / self.decisions if self.decisions else None


def _week_of(moment: datetime) -> date:
    day = timezone.localtime(moment).date()
    return day - timedelta(days=day.weekday())


def weeks_in_practice(weeks: int = WEEKS, today: date | None = None) -> list[Week]:
    """The last `weeks` weeks (each from its Monday), newest first, from the first with anything to count."""
    this_week = _week_of(timezone.now()) if today is None else today - timedelta(days=today.weekday())
    found = {this_week - timedelta(weeks=n): Week(this_week - timedelta(weeks=n)) for n in range(weeks)}
    since = timezone.make_aware(datetime.combine(min(found), time.min))
    confirmations = (Feedback.objects.filter(verdict=Verdict.ROOT_CAUSE, created_at__gte=since).exclude(headline="")
                     .exclude(target_kind=TargetKind.RUNBOOK).order_by("created_at", "pk")
                     .values_list("created_at", "incident_id", "target_kind", "target_ref", "headline"))
    rows = list(confirmations)
    category_of = dict(Incident.objects.filter(pk__in=[int(ref) for _, _, kind, ref, _ in rows
                                                       if kind == TargetKind.INCIDENT and ref.isdigit()])
                       .values_list("pk", "root_cause_category__slug"))
    latest = {}  # per week and incident, the last word
    for created_at, incident_id, kind, ref, headline in rows:
        category = ref if kind == TargetKind.HYPOTHESIS else category_of.get(int(ref)) if ref.isdigit() else None
        latest[(_week_of(created_at), incident_id)] = category == headline
    for (week, _), right in latest.items():
        if week in found:
            found[week].headlines += 1
            found[week].headline_right += right
    for decided_at, followed in followed_since(since):
        week = found.get(_week_of(decided_at))
        if week is None:
            continue
        if followed is None:
            week.untold += 1
        else:
            week.decisions += 1
            week.followed += followed
    newest_first = [found[start] for start in sorted(found, reverse=True)]
    while newest_first and not (newest_first[-1].headlines or newest_first[-1].decisions or newest_first[-1].untold):
        newest_first.pop()  # the weeks before the first verdict or decision say nothing
    return newest_first


def last_evaluation() -> list[EvaluationResult]:
    """Each labelled set's latest result in hybrid mode (what suggestions use), newest first."""
    latest = {}
    for result in EvaluationResult.objects.filter(mode="hybrid").order_by("-created_at", "-pk")[:200]:
        latest.setdefault(result.dataset, result)
    return sorted(latest.values(), key=lambda r: r.created_at, reverse=True)
