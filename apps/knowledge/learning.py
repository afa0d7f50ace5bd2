"""Learning the evidence weights from the database's resolved incidents (see fusion.py for why).

`learn_fusion()` runs after every full rebuild and once a day: it asks a stratified sample of the
indexed resolved incidents, and of the open ones whose root cause an operator confirmed, as
queries (each as its incident page would, with its fold held out of the index), fits the weights, and records them in the index's meta.json, which every process
takes over on its next query without reloading the documents. With too little history the index
keeps the fixed ranking.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Count, F
from django.utils import timezone

from apps.incidents.models import Incident, IncidentStatus, RootCauseCategory
from apps.knowledge import adaptation
from apps.knowledge.embedding import embed_documents
from apps.knowledge.fusion import Example, fit_weights, held_out_evidence
from apps.knowledge.index import doc_id, record_meta
from apps.knowledge.indexing import incident_query, index_directory, reader
from apps.knowledge.models import Feedback, TargetKind, Verdict
from apps.knowledge.ranking import FEATURES, candidate_categories
from apps.knowledge.spaces import index_label_vectors, index_map

logger = logging.getLogger("flowdeck.knowledge")
# Enough held-out queries to weigh the features; more only costs time (each is a full query).
SAMPLE = 400


@dataclass
class LearnedFusion:
    examples: int
    weights: dict[str, float] | None  # None: too little history, the fixed ranking stays


def category_names(slugs) -> dict[str, str]:
    """Each category's name as the team wrote it (an imported label's own words)."""
    names = dict(RootCauseCategory.objects.filter(slug__in=list(slugs)).values_list("slug", "name"))
    return {slug: names.get(slug) or slug.replace("-", " ") for slug in slugs}


def _sample(index) -> list[tuple[Incident, str]]:
    """Up to SAMPLE labelled incidents with their root cause, the newest of each category first,
    categories in turn: the indexed resolved ones, and the open ones whose root cause an operator
    confirmed (not in the index yet, so nothing of theirs needs holding out)."""
    indexed = {int(index.docs[p].ref) for p in index.positions_by_kind.get("incident", [])}
    by_category = defaultdict(list)
    rows = (Incident.objects.filter(status=IncidentStatus.RESOLVED, root_cause_category__isnull=False)
            .select_related("root_cause_category").order_by("-resolved_at", "-pk"))
    for incident in rows.iterator():
        if incident.pk in indexed:
            by_category[incident.root_cause_category.slug].append(incident)
    for incident, category in _confirmed_open():
        by_category[category].append(incident)
    chosen = []
    while len(chosen) < SAMPLE and any(by_category.values()):
        for slug in sorted(by_category):
            if by_category[slug] and len(chosen) < SAMPLE:
                chosen.append((by_category[slug].pop(0), slug))
    return chosen


def _confirmed_open() -> list[tuple[Incident, str]]:
    """Unresolved incidents whose root cause someone confirmed, with the latest one confirmed."""
    latest: dict[int, str] = {}
    known = set(RootCauseCategory.objects.values_list("slug", flat=True))
    for incident_id, category in (Feedback.objects.filter(target_kind=TargetKind.HYPOTHESIS, verdict=Verdict.ROOT_CAUSE)
                                  .exclude(incident__status=IncidentStatus.RESOLVED)
                                  .order_by("created_at", "pk").values_list("incident_id", "target_ref")):
        if category in known:
            latest[incident_id] = category
    incidents = Incident.objects.in_bulk(list(latest))
    return [(incidents[pk], category) for pk, category in latest.items() if pk in incidents]


def learn_fusion() -> LearnedFusion:
    index = reader().get()
    sample = _sample(index)
    if len({label for _, label in sample}) < 2:
        return LearnedFusion(examples=len(sample), weights=None)
    queries = [incident_query(incident) for incident, _ in sample]
    # The queries (and the label names) go into the space the index's vectors are in.
    vectors = adaptation.apply(index_map(index), embed_documents(queries))
    examples = [Example(doc_id("incident", incident.pk), label, query, vector)
                for (incident, label), query, vector in zip(sample, queries, vectors)]
    candidates = candidate_categories(index)
    evidence = held_out_evidence(index, examples, candidates_for=lambda allowed: candidate_categories(index, allowed),
                                 label_vectors=index_label_vectors(index, category_names(candidates)),
                                 weights_by_doc=feedback_weights())
    weights = fit_weights(evidence)
    if weights is None:
        return LearnedFusion(examples=len(evidence), weights=None)
    learned = dict(zip(FEATURES, (round(float(w), 4) for w in weights)))
    record_meta(index_directory(), fusion={"features": list(FEATURES), "weights": list(learned.values()),
                                           "examples": len(evidence), "learned_at": timezone.now().isoformat()})
    logger.info("evidence weights learned from %d labelled incidents: %s", len(evidence), learned)
    return LearnedFusion(examples=len(evidence), weights=learned)


# How much an operator's verdict on a suggested incident moves its weight as a neighbour.
FEEDBACK_EFFECT = {Verdict.ROOT_CAUSE: 1.0, Verdict.HELPFUL: 0.25, Verdict.NOT_HELPFUL: -0.5}


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
