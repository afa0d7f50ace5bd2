"""Suggestions for a failure: root-cause hypotheses, similar incidents, runbook sections.

`suggest_for_failure(text, error_signature)` ranks any failure text (the API's free-text
endpoint, and apps.knowledge.incident_ranking, which computes the one ranking every page shows
for an incident). Every item carries a citation the operator can open. The top hypothesis's
confidence is calibrated (apps.knowledge.calibration); only at or above its threshold is it a
headline guess (`sure`). Near-duplicate incidents are folded into one entry with a count.
Operators' feedback changes later rankings: an incident confirmed as the root cause of
another weighs more among neighbours, one marked not helpful weighs less.
"""

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
from django.db.models import Q
from django.urls import NoReverseMatch, reverse

from apps.accounts.access import visible_team_ids
from apps.incidents.models import Incident, RootCauseCategory
from apps.knowledge import adaptation
from apps.knowledge.spaces import index_label_vectors, index_map
from apps.knowledge.calibration import HEADLINE_THRESHOLD, calibrated
from apps.knowledge.known_causes import KnownCause
from apps.knowledge.embedding import encode_query
from apps.knowledge.index import KnowledgeIndex, doc_id
from apps.knowledge.fusion import weights_from_meta
from apps.knowledge.indexing import failure_query, reader
from apps.knowledge.models import RunbookSection
from apps.knowledge.learning import category_names, feedback_weights
from apps.knowledge.ranking import (CategoryScore, allowed_mask, candidate_categories, category_history,
                                    category_prototypes, rank, score_categories, softmax)
from apps.monitoring.counters import count_index_query  # /metrics counts the queries served


# A query longer than this (a whole imported post-mortem) is cut: its first pages say enough.
QUERY_LIMIT = 8000


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
    count: int = 1  # near-duplicates folded into this entry (the same title and cause)


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
    # A failure Flowdeck named itself: shown first, as a fact; no hypotheses are guessed then.
    known_cause: KnownCause | None = None
    # The top hypothesis's calibrated confidence reached HEADLINE_THRESHOLD: it is the headline guess.
    sure: bool = False
    # Log-odds the failure's investigation added to categories (apps.knowledge.incident_ranking.category_prior).
    prior: dict[str, float] = field(default_factory=dict)
    # The root cause an operator confirmed for this failure (a category slug): it heads the list,
    # the model's numbers beside it (apps.knowledge.confirmation).
    confirmed: str = ""

    @property
    def is_empty(self) -> bool:
        return not (self.known_cause or self.hypotheses or self.similar_incidents or self.runbook_sections)

    @classmethod
    def from_dict(cls, data: dict) -> "Suggestions":
        """The inverse of dataclasses.asdict (a stored ranking)."""
        def cited(item, kind):
            return kind(**{**item, "citation": Citation(**item["citation"])})

        return cls(
            hypotheses=[Hypothesis(**{**h, "citations": [Citation(**c) for c in h["citations"]]})
                        for h in data["hypotheses"]],
            similar_incidents=[cited(s, SimilarIncident) for s in data["similar_incidents"]],
            runbook_sections=[cited(r, RunbookMatch) for r in data["runbook_sections"]],
            index_ready=data["index_ready"], sure=data["sure"], prior=data.get("prior") or {},
            confirmed=data.get("confirmed", ""),
            known_cause=KnownCause(**data["known_cause"]) if data.get("known_cause") else None)


def _url(name: str, *args, anchor: str = "") -> str:
    try:
        return reverse(name, args=args) + (f"#{anchor}" if anchor else "")
    except NoReverseMatch:  # pages not mounted (e.g. a worker without the web URLs)
        return ""


def query_vector(index: KnowledgeIndex, query: str) -> np.ndarray:
    """The query's vector in the index's space: the stock model's (cached by content hash), mapped
    by the index's adaptation if it has one (one 384x384 product)."""
    return adaptation.apply(index_map(index), encode_query(query))


def evidence_context(index: KnowledgeIndex) -> dict:
    """What scoring needs besides the query, once per loaded index (a reload or new weights drop it):
    centroids, incident counts, candidates, and with learned weights the vectors of the labels'
    names (embedded when the weights were learned)."""
    if "evidence" not in index.derived:
        candidates = candidate_categories(index)
        fusion = weights_from_meta(index.meta)
        index.derived["evidence"] = {
            "prototypes": category_prototypes(index), "history": category_history(index), "candidates": candidates,
            "fusion": fusion,
            "label_vectors": index_label_vectors(index, category_names(candidates)) if fusion is not None else None}
    return index.derived["evidence"]


def suggest_for_failure(text: str, error_signature: str | None = None, *, user=None, team_ids=None,
                        exclude_incident_id=None, limit: int = 5, prior: dict[str, float] | None = None,
                        evidence: list[tuple[str, Citation]] | None = None) -> Suggestions:
    """Ranked root-cause hypotheses, similar resolved incidents and runbook sections for a failure.

    With `user` (or explicit `team_ids`), only incidents of those teams are cited, plus shared history.
    `prior`: log-odds added to categories before calibration, from what the failure's investigation
    found; `evidence`: (category, citation) of those findings, cited by the hypotheses they raised.
    """
    index = reader().get()
    if not len(index):
        return Suggestions(index_ready=False)
    query = failure_query(text, error_signature)
    vector = query_vector(index, query[:QUERY_LIMIT])
    count_index_query()
    if user is not None:
        team_ids = visible_team_ids(user)
    excluded = {doc_id("incident", exclude_incident_id)} if exclude_incident_id else set()
    allowed = allowed_mask(index, team_ids=team_ids, excluded_ids=excluded)
    ranked = rank(index, query[:QUERY_LIMIT], vector, mode="hybrid", allowed=allowed)
    context = evidence_context(index)
    scores = score_categories(index, ranked, vector, context["candidates"], weights_by_doc=feedback_weights(),
                              prototypes=context["prototypes"], history=context["history"],
                              label_vectors=context["label_vectors"], fusion=context["fusion"])
    if prior:
        scores = with_prior(scores, prior)
    names = dict(RootCauseCategory.objects.values_list("slug", "name"))
    section_by_category = _runbook_sections_by_category()
    hypotheses = []
    for score, confidence in zip(scores[:limit], _calibrated_confidences([s.confidence for s in scores])):
        # One citation per title: near-duplicates of one recurring failure say it once.
        titled = {index.docs[p].title.lower(): p for p in reversed(score.neighbours[:SIMILAR_CANDIDATES])}
        neighbours = sorted(titled.values(), key=score.neighbours.index)[:3]
        citations = [Citation(f"Incident #{index.docs[p].ref}: {index.docs[p].title}",
                              _url("incidents:detail", int(index.docs[p].ref))) for p in neighbours]
        citations += [Citation(f"Runbook: {title}", url) for title, url in section_by_category.get(score.category, [])]
        citations += [citation for category, citation in evidence or () if category == score.category]
        hypotheses.append(Hypothesis(category=score.category, name=names.get(score.category, score.category),
                                     confidence=float(confidence), citations=citations))
    return Suggestions(hypotheses=hypotheses, similar_incidents=_similar(index, ranked, limit),
                       runbook_sections=_runbooks(index, ranked, limit),
                       sure=bool(hypotheses and hypotheses[0].confidence >= HEADLINE_THRESHOLD), prior=dict(prior or {}))


def with_prior(scores: list[CategoryScore], prior: dict[str, float]) -> list[CategoryScore]:
    """The scores with `prior` added to their logits, confidences the softmax again, best first:
    the odds of a category grow by exp(prior), the others' shrink only through the renormalization."""
    for score in scores:
        score.score += prior.get(score.category, 0.0)
    logits = np.array([score.score for score in scores])
    for score, probability in zip(scores, softmax(logits)):
        score.confidence = float(probability)
    return sorted(scores, key=lambda s: (-s.score, s.category))


def _calibrated_confidences(probabilities: list[float]) -> list[float]:
    """The top one calibrated (how often such a guess is right); the others share what is left in
    the ranking's proportions, so the list still sums to 1."""
    if not probabilities:
        return []
    top, rest = probabilities[0], probabilities[1:]
    headline = calibrated(top, rest[0] if rest else 0.0)
    share = (1 - headline) / (1 - top) if top < 1 else 0.0
    return [headline] + [p * share for p in rest]


def _runbook_sections_by_category() -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for section in RunbookSection.objects.filter(position=0).select_related("runbook"):
        if section.runbook.category:
            found[section.runbook.category].append(
                (section.runbook.title, _url("knowledge:runbook", section.runbook_id)))
    return found


# Hits looked at to fill `limit` entries once near-duplicates are folded.
SIMILAR_CANDIDATES = 30


def _similar(index: KnowledgeIndex, ranked, limit: int) -> list[SimilarIncident]:
    hits = ranked.by_kind.get("incident", [])[:SIMILAR_CANDIDATES]
    ids = [int(index.docs[h.position].ref) for h in hits]
    return similar_entries(Incident.objects.select_related("root_cause_category").in_bulk(ids), ids, limit)


def similar_entries(incidents: dict[int, Incident], ids: list[int], limit: int) -> list[SimilarIncident]:
    """Entries for incidents `ids` (best first), near-duplicates (the same title and root-cause
    category: a recurring failure imported many times) folded into the best one with a count."""
    entries: dict[tuple, SimilarIncident] = {}
    for pk in ids:
        incident = incidents.get(pk)
        if incident is None:  # deleted since the index was written
            continue
        category = incident.root_cause_category.name if incident.root_cause_category else ""
        key = (" ".join(incident.title.lower().split()), category)
        if key in entries:
            entries[key].count += 1
            continue
        if len(entries) == limit:
            continue  # still counted as a duplicate of an entry shown, never shown itself
        entries[key] = SimilarIncident(
            id=pk, title=incident.title, category=category,
            root_cause=incident.root_cause_description, resolution=incident.resolution,
            citation=Citation(f"Incident #{pk}", _url("incidents:detail", pk) or incident.source_url),
            source_url=incident.source_url,
        )
    return list(entries.values())


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


def search_runbook_sections(query: str) -> list[RunbookSection]:
    """Runbook sections for a search: hybrid retrieval when the index is built, else text match."""
    index = reader().get()
    if len(index):
        ranked = rank(index, query, query_vector(index, query[:QUERY_LIMIT]), mode="hybrid", limit=40)
        count_index_query()
        ids = [int(index.docs[h.position].ref) for h in ranked.by_kind.get("runbook", [])]
        found = RunbookSection.objects.select_related("runbook").in_bulk(ids)
        return [found[i] for i in ids if i in found]
    condition = Q()
    for word in query.split():
        condition &= Q(body__icontains=word) | Q(heading__icontains=word) | Q(runbook__title__icontains=word)
    return list(RunbookSection.objects.filter(condition).select_related("runbook")[:200])
