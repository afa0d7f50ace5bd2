"""The one ranking of an incident's failure, which every page shows: the incident page, its
failure's checkpoint, the inbox and the API render it from the same stored result.

It is computed once for what it depends on (the index's version and learned weights, operators'
feedback, the calibration, the failure's text and reason, the team) and stored on the incident's
SuggestionSnapshot with that key. It is scoped to the incident's team and shared history, not to
the person looking, so everyone who may see the incident sees the same list. A known cause needs
no model and is computed at once; otherwise, when this process has not loaded the model and the
newest index (apps.knowledge.warmup loads them when it starts), a page gets None and the ranking
is computed by a worker (`tasks.rank_incident`), which the page polls: no request waits for a load.
"""

import hashlib
import json
from dataclasses import asdict

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from apps.celery import app as celery_app
from apps.incidents.models import Incident, IncidentOccurrence, IncidentStatus
from apps.knowledge.calibration import HEADLINE_THRESHOLD, PLATT
from apps.knowledge.confirmation import confirmed_cause, with_confirmation
from apps.knowledge.indexing import incident_query, reader
from apps.knowledge.known_causes import known_cause, runbook_links
from apps.knowledge.models import Feedback, SuggestionSnapshot
from apps.knowledge.suggest import Citation, Suggestions, similar_entries, suggest_for_failure
from apps.knowledge.warmup import ready_to_rank
from apps.runs.investigation import Fact, investigate
from apps.runs.models import StepRun

RANK_INCIDENT_TASK = "apps.knowledge.tasks.rank_incident"

LIMIT = 5
# The most a failure's investigation adds to one category's log-odds, whatever it found: its odds
# grow at most e-fold (×2.7). Facts are circumstantial (versions change often, for unrelated
# reasons), so they reorder close hypotheses and settle a tie, but a category the error text and
# history point at clearly keeps its place. Not calibrated: the labelled sets have no run history.
MAX_PRIOR = 1.0
# A page asks for a missing ranking at most this often per incident (the worker may be busy).
REQUEST_EVERY_SECONDS = 60


def _shared_dependencies() -> list:
    """What every incident's ranking depends on: the index, its learned weights, all feedback
    (it weighs neighbours), the calibration."""
    meta = reader().disk_meta()
    feedback = Feedback.objects.aggregate(n=Count("pk"), last=Max("created_at"))
    return [meta.get("version", 0), meta.get("fusion"), feedback["n"], str(feedback["last"]), PLATT,
            HEADLINE_THRESHOLD]


def dependencies(incident: Incident, shared: list | None = None, prior: dict[str, float] | None = None) -> str:
    """The key of what the incident's ranking depends on: when it changes, the ranking is stale."""
    parts = (shared or _shared_dependencies()) + [
        incident_query(incident), incident.error_reason, incident.error_detail, incident.team_id,
        incident.workflow_id, incident.run_id, incident.step_id]
    if prior:
        parts.append(prior)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def investigation_of(incident: Incident) -> list[Fact]:
    """What changed before the incident's failure (apps.runs.investigation), while its run is kept."""
    if not (incident.run_id and incident.step_id):
        return []
    step_run = StepRun.objects.filter(run_id=incident.run_id, step_id=incident.step_id).first()
    return investigate(step_run) if step_run is not None else []


def category_prior(facts: list[Fact]) -> dict[str, float]:
    """The facts' category hints summed per category, each capped at MAX_PRIOR (rounded: it is part
    of the ranking's key)."""
    summed: dict[str, float] = {}
    for fact in facts:
        for category, weight in fact.hints.items():
            summed[category] = summed.get(category, 0.0) + weight
    return {category: round(min(MAX_PRIOR, weight), 2) for category, weight in sorted(summed.items()) if weight > 0}


def ranking_for(incident: Incident, *, compute: bool | None = None, facts: list[Fact] | None = None
                ) -> Suggestions | None:
    """The incident's ranking: stored, or computed now when that needs no model load (or
    `compute` says so, in a worker); None while a worker computes it. `facts`: the failure's
    investigation when the caller has it already."""
    facts = investigation_of(incident) if facts is None else facts
    prior = category_prior(facts)
    key = dependencies(incident, prior=prior)
    snapshot = SuggestionSnapshot.objects.filter(incident=incident, dependencies=key).first()
    if snapshot is not None and snapshot.suggestions:
        return Suggestions.from_dict(snapshot.suggestions)
    if compute is None:
        # Nothing to load without an index either: the page says how to build one.
        compute = bool(incident.error_reason) or not reader().disk_meta().get("version") or ready_to_rank()
    if not compute:
        _request(incident.pk, key)
        return None
    suggestions = _compute(incident, facts, prior)
    if not suggestions.index_ready:
        return suggestions  # nothing ranked yet, and cheap to say again
    # The model's order, kept apart from what is shown: where a confirmed cause ranked is measured on it.
    categories = ([suggestions.known_cause.category] if suggestions.known_cause
                  else [h.category for h in suggestions.hypotheses])
    suggestions = with_confirmation(suggestions, confirmed_cause(incident))
    SuggestionSnapshot.objects.update_or_create(incident=incident, defaults={
        "dependencies": key, "suggestions": asdict(suggestions), "categories": categories,
        "created_at": timezone.now()})
    return suggestions


def show_confirmation(incident: Incident, key_before: str) -> None:
    """After a root cause was confirmed (or withdrawn) on `incident`: its stored ranking shows that
    at once, on every page. A ranking that was current (`key_before`: its key before the verdict)
    stays current: the verdict changed the feedback every key depends on, but not what the model
    says about this failure (it re-weighs this incident as others' neighbour)."""
    snapshot = SuggestionSnapshot.objects.select_for_update().filter(incident=incident).first()
    if snapshot is None or not snapshot.suggestions:
        return  # ranked later, with the confirmation
    shown = with_confirmation(Suggestions.from_dict(snapshot.suggestions), confirmed_cause(incident),
                              model_order=snapshot.categories)
    snapshot.suggestions = asdict(shown)
    if snapshot.dependencies == key_before:
        snapshot.dependencies = dependencies(incident, prior=category_prior(investigation_of(incident)))
    snapshot.save(update_fields=["suggestions", "dependencies"])


def _compute(incident: Incident, facts: list[Fact], prior: dict[str, float]) -> Suggestions:
    known = known_cause(incident.error_reason, incident.error_detail, workflow_id=incident.workflow_id,
                        run_id=incident.run_id, step_id=incident.step_id,
                        runbook_sections=runbook_links() if incident.error_reason else None)
    if known is not None:
        return Suggestions(known_cause=known, similar_incidents=_same_reason(incident))
    team_ids = set() if incident.team_id is None else {incident.team_id}
    evidence = [(category, Citation(f"Found: {fact.text}", fact.url)) for fact in facts for category in fact.hints]
    return suggest_for_failure(incident_query(incident), team_ids=team_ids, exclude_incident_id=incident.pk,
                               limit=LIMIT, prior=prior, evidence=evidence)


def _same_reason(incident: Incident):
    """Resolved incidents of the team (or shared) with the same known reason: how it was fixed before."""
    earlier = (Incident.objects.filter(error_reason=incident.error_reason, status=IncidentStatus.RESOLVED)
               .filter(Q(team_id=incident.team_id) | Q(team__isnull=True)).exclude(pk=incident.pk)
               .select_related("root_cause_category").order_by("-resolved_at")[:30])
    found = {i.pk: i for i in earlier}
    return similar_entries(found, list(found), LIMIT)


def _request(incident_id: int, key: str) -> None:
    if cache.add(f"knowledge:ranking-requested:{incident_id}:{key}", True, REQUEST_EVERY_SECONDS):
        # By name: the tasks module imports this one to do the work.
        transaction.on_commit(lambda: celery_app.tasks[RANK_INCIDENT_TASK].delay(incident_id))


def rankings_of_step_runs(step_run_ids) -> dict[int, Suggestions]:
    """The stored, current rankings of the incidents the failures of `step_run_ids` joined, by
    step run id (for lists such as the inbox, which never compute one)."""
    latest = {}
    for step_run_id, incident_id in (IncidentOccurrence.objects.filter(step_run_id__in=list(step_run_ids))
                                     .order_by("occurred_at", "pk").values_list("step_run_id", "incident_id")):
        latest[step_run_id] = incident_id
    snapshots = {s.incident_id: s for s in SuggestionSnapshot.objects.filter(incident_id__in=set(latest.values()))
                 .select_related("incident") if s.suggestions}
    shared = _shared_dependencies() if snapshots else []
    found = {}
    for step_run_id, incident_id in latest.items():
        snapshot = snapshots.get(incident_id)
        if snapshot is None:
            continue
        # With the prior it was ranked with: a list does not investigate each row again (a
        # failure's investigation hardly changes once it failed, see apps.runs.investigation).
        if snapshot.dependencies == dependencies(snapshot.incident, shared, snapshot.suggestions.get("prior")):
            found[step_run_id] = Suggestions.from_dict(snapshot.suggestions)
    return found
