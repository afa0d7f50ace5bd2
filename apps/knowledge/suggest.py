"""Suggestions for a failure: root-cause hypotheses, similar incidents, runbook sections.

`suggest_for_failure(text, error_signature)` is the one entry point (incident pages, the
approvals checkpoint view, the API). Every item carries a citation the operator can open.
Operators' feedback changes later rankings: an incident confirmed as the root cause of
another weighs more among neighbours, one marked not helpful weighs less.
"""

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, F, Q
from django.urls import NoReverseMatch, reverse

from apps.accounts.access import visible_team_ids
from apps.incidents.models import Incident, RootCauseCategory
from apps.knowledge.embedding import encode_query
from apps.knowledge.index import KnowledgeIndex, doc_id
from apps.knowledge.fusion import label_vectors, weights_from_meta
from apps.knowledge.indexing import failure_query, incident_query, reader
from apps.knowledge.models import Feedback, RunbookSection, TargetKind, Verdict
from apps.knowledge.learning import category_names
from apps.knowledge.ranking import (allowed_mask, candidate_categories, category_history, category_prototypes, rank,
                                    score_categories)
from apps.monitoring.counters import count_index_query  # /metrics counts the queries served


# A query longer than this (a whole imported post-mortem) is cut: its first pages say enough.
QUERY_LIMIT = 8000
FEEDBACK_EFFECT = {Verdict.ROOT_CAUSE: 1.0, Verdict.HELPFUL: 0.25, Verdict.NOT_HELPFUL: -0.5}


@dataclass
class Citation:
    label: str
    url: str


@dataclass
class Hypothesis:
    category: str
    name: str
    confidence: float
    citations: list[Citation] = field(default_factory=list)


@dataclass
class SimilarIncident:
    id: int
    title: str
    category: str
    root_cause: str
    resolution: str
    citation: Citation
    source_url: str = ""


@dataclass
class RunbookMatch:
    id: int
    title: str
    excerpt: str
    citation: Citation


@dataclass
class Suggestions:
    hypotheses: list[Hypothesis] = field(default_factory=list)
    similar_incidents: list[SimilarIncident] = field(default_factory=list)
    runbook_sections: list[RunbookMatch] = field(default_factory=list)
    index_ready: bool = True

    @property
    def is_empty(self) -> bool:
        return not (self.hypotheses or self.similar_incidents or self.runbook_sections)


def _url(name: str, *args, anchor: str = "") -> str:
    try:
        return reverse(name, args=args) + (f"#{anchor}" if anchor else "")
    except NoReverseMatch:  # pages not mounted (e.g. a worker without the web URLs)
        return ""


def feedback_weights() -> dict[int, float]:
    """Neighbour weight of each indexed incident, from all operators' verdicts."""
    weights: dict[int, float] = defaultdict(lambda: 1.0)
    rows = (Feedback.objects.filter(target_kind=TargetKind.INCIDENT)
            .values("target_ref", "verdict").annotate(n=Count("pk")))
    for row in rows:
        if row["target_ref"].isdigit():
            weights[doc_id("incident", int(row["target_ref"]))] += FEEDBACK_EFFECT[row["verdict"]] * row["n"]
    # An incident whose root cause an operator confirmed while triaging it is trusted knowledge.
    confirmed = Feedback.objects.filter(target_kind=TargetKind.HYPOTHESIS, verdict=Verdict.ROOT_CAUSE,
                                        incident__root_cause_category__slug=F("target_ref"))
    for incident_id in confirmed.values_list("incident_id", flat=True).distinct():
        weights[doc_id("incident", incident_id)] += FEEDBACK_EFFECT[Verdict.ROOT_CAUSE]
    return {key: min(4.0, max(0.2, value)) for key, value in weights.items()}


def _evidence_context(index: KnowledgeIndex) -> dict:
    """What scoring needs besides the query, once per loaded index (a reload or new weights drop it):
    centroids, incident counts, candidates, and with learned weights the vectors of the labels'
    names (embedded when the weights were learned)."""
    if "evidence" not in index.derived:
        candidates = candidate_categories(index)
        fusion = weights_from_meta(index.meta)
        index.derived["evidence"] = {
            "prototypes": category_prototypes(index), "history": category_history(index), "candidates": candidates,
            "fusion": fusion,
            "label_vectors": label_vectors(category_names(candidates)) if fusion is not None else None}
    return index.derived["evidence"]


def suggest_for_failure(text: str, error_signature: str | None = None, *, user=None, team_ids=None,
                        exclude_incident_id=None, limit: int = 5) -> Suggestions:
    """Ranked root-cause hypotheses, similar resolved incidents and runbook sections for a failure.

    With `user` (or explicit `team_ids`), only incidents of those teams are cited, plus shared history.
    """
    index = reader().get()
    if not len(index):
        return Suggestions(index_ready=False)
    query = failure_query(text, error_signature)
    vector = encode_query(query[:QUERY_LIMIT])
    count_index_query()
    if user is not None:
        team_ids = visible_team_ids(user)
    excluded = {doc_id("incident", exclude_incident_id)} if exclude_incident_id else set()
    allowed = allowed_mask(index, team_ids=team_ids, excluded_ids=excluded)
    ranked = rank(index, query[:QUERY_LIMIT], vector, mode="hybrid", allowed=allowed)
    context = _evidence_context(index)
    scores = score_categories(index, ranked, vector, context["candidates"], weights_by_doc=feedback_weights(),
                              prototypes=context["prototypes"], history=context["history"],
                              label_vectors=context["label_vectors"], fusion=context["fusion"])
    names = dict(RootCauseCategory.objects.values_list("slug", "name"))
    section_by_category = _runbook_sections_by_category()
    hypotheses = []
    for score in scores[:limit]:
        citations = [Citation(f"Incident #{index.docs[p].ref}: {index.docs[p].title}",
                              _url("incidents:detail", int(index.docs[p].ref))) for p in score.neighbours[:3]]
        citations += [Citation(f"Runbook: {title}", url) for title, url in section_by_category.get(score.category, [])]
        hypotheses.append(Hypothesis(category=score.category, name=names.get(score.category, score.category),
                                     confidence=score.confidence, citations=citations))
    return Suggestions(hypotheses=hypotheses, similar_incidents=_similar(index, ranked, limit),
                       runbook_sections=_runbooks(index, ranked, limit))


def _runbook_sections_by_category() -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for section in RunbookSection.objects.filter(position=0).select_related("runbook"):
        if section.runbook.category:
            found[section.runbook.category].append(
                (section.runbook.title, _url("knowledge:runbook", section.runbook_id)))
    return found


def _similar(index: KnowledgeIndex, ranked, limit: int) -> list[SimilarIncident]:
    hits = ranked.by_kind.get("incident", [])[:limit]
    ids = [int(index.docs[h.position].ref) for h in hits]
    incidents = Incident.objects.in_bulk(ids)
    similar = []
    for pk in ids:
        incident = incidents.get(pk)
        if incident is None:  # deleted since the index was written
            continue
        similar.append(SimilarIncident(
            id=pk, title=incident.title,
            category=incident.root_cause_category.name if incident.root_cause_category else "",
            root_cause=incident.root_cause_description, resolution=incident.resolution,
            citation=Citation(f"Incident #{pk}", _url("incidents:detail", pk) or incident.source_url),
            source_url=incident.source_url,
        ))
    return similar


def _runbooks(index: KnowledgeIndex, ranked, limit: int) -> list[RunbookMatch]:
    hits = ranked.by_kind.get("runbook", [])[:limit]
    ids = [int(index.docs[h.position].ref) for h in hits]
    sections = RunbookSection.objects.select_related("runbook").in_bulk(ids)
    matches = []
    for pk in ids:
        section = sections.get(pk)
        if section is None:
            continue
        matches.append(RunbookMatch(
            id=pk, title=f"{section.runbook.title} › {section.heading}", excerpt=section.body[:280],
            citation=Citation(f"{section.runbook.path}#{section.anchor}",
                              _url("knowledge:runbook", section.runbook_id, anchor=section.anchor)),
        ))
    return matches


def suggest_for_incident(incident: Incident, user=None, team_ids=None) -> Suggestions:
    return suggest_for_failure(incident_query(incident), user=user, team_ids=team_ids,
                               exclude_incident_id=incident.pk)


def search_runbook_sections(query: str) -> list[RunbookSection]:
    """Runbook sections for a search: hybrid retrieval when the index is built, else text match."""
    index = reader().get()
    if len(index):
        ranked = rank(index, query, encode_query(query[:QUERY_LIMIT]), mode="hybrid", limit=40)
        count_index_query()
        ids = [int(index.docs[h.position].ref) for h in ranked.by_kind.get("runbook", [])]
        found = RunbookSection.objects.select_related("runbook").in_bulk(ids)
        return [found[i] for i in ids if i in found]
    condition = Q()
    for word in query.split():
        condition &= Q(body__icontains=word) | Q(heading__icontains=word) | Q(runbook__title__icontains=word)
    return list(RunbookSection.objects.filter(condition).select_related("runbook")[:200])
