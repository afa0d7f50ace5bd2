"""Hybrid retrieval and root-cause ranking over a KnowledgeIndex: pure functions, no database.

Retrieval ranks documents of each kind by dense similarity and by BM25 and fuses the two
rankings by reciprocal rank fusion (RRF), which needs no score calibration between them; when
the query carries an exact code the corpus knows (ORA-00060, LDG-7731), BM25 counts double.

Root-cause hypotheses score every candidate category from three kinds of evidence, so a new
failure can match a category even without a close neighbour:
  neighbours   the categories of the most similar resolved incidents, by fused rank, each
               weighted by operators' feedback (a confirmed root cause counts more);
  prototype    similarity to the centroid of the category's past incidents (dense only);
  description  how well the failure matches the category's own description and the runbook
               sections written for it.
Neighbours and prototypes work for any label a team uses. Descriptions exist only for the
categories we ship or an admin described, so they count as a centred prior: above or below the
average described category, zero for a label without one (an imported label is not penalised
for lacking our prose), and fading as a category gathers its own resolved incidents, which say
better than our prose how this team words it.
The weighted sum becomes a distribution by a softmax whose temperature was fitted on the dev
set (`manage.py knowledge_eval --fit`), so a confidence of 0.7 is right about 70% of the time.
That fixed ranking is the starting point: once a team has resolved incidents, the index learns
how much each kind of evidence (FEATURES) counts for the way this team writes, from its own
history (apps/knowledge/fusion.py), and the softmax of the learned weights is the confidence.
"""

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from apps.knowledge.index import KnowledgeIndex

RRF_K = 60
# An error code, exception number or host name that the query shares with the corpus is strong
# evidence that embeddings blur: then the lexical ranking counts this much more in the fusion.
CODE_MATCH_WEIGHT = 2.0
MODES = ("dense", "lexical", "hybrid")
# Chosen by 5-fold cross-validation on fixtures/incidents/dev_set.jsonl, also with its labels
# renamed to ones we ship no description for (all of them, or half), so that the weights hold
# for a team's own taxonomy and not only for ours; see knowledge_eval.
WEIGHTS = {"neighbours": 1.0, "description": 2.0, "prototype": 1.0}
TEMPERATURE = 0.2
NEIGHBOURS = 15
DENSE_SHARPNESS = 0.1  # cosine differences that matter between two categories
LEXICAL_SHARPNESS = 0.1  # fraction of the best BM25 score
EXACT_SEARCH_LIMIT = 20_000
DENSE_CANDIDATES = 400  # taken from the approximate index above EXACT_SEARCH_LIMIT documents
# A category's description counts as much as this many of its own resolved incidents.
DESCRIPTION_PRIOR_INCIDENTS = 10.0


@dataclass
class Hit:
    position: int
    score: float
    rank: int


@dataclass
class Ranked:
    """Fused rankings of one query: hits per kind, best first."""

    by_kind: dict[str, list[Hit]]
    dense: np.ndarray | None = None  # cosine of every document, when dense retrieval ran
    lexical: np.ndarray | None = None  # BM25 of every document, when lexical retrieval ran
    # Incident positions as each retriever alone ranked them, before fusion (best first).
    incidents_by_retriever: dict[str, list[int]] = field(default_factory=dict)


def _rank_positions(scores: np.ndarray, positions: np.ndarray, limit: int, require_positive: bool) -> list[int]:
    if not len(positions):
        return []
    subset = scores[positions]
    if len(subset) > limit:
        best = np.argpartition(-subset, limit)[:limit]
        order = best[np.argsort(-subset[best], kind="stable")]
    else:
        order = np.argsort(-subset, kind="stable")
    return [int(positions[i]) for i in order if not require_positive or subset[i] > 0]


def allowed_mask(index: KnowledgeIndex, *, team_ids=None, excluded_ids=()) -> np.ndarray:
    """Documents a query may use: background knowledge, shared history, incidents of `team_ids`
    (None: every team), never `excluded_ids` (the incident itself, a held-out fold)."""
    incidents = np.zeros(len(index.docs), dtype=bool)
    incidents[index.positions_by_kind.get("incident", [])] = True
    allowed = np.ones(len(index.docs), dtype=bool)
    if team_ids is not None:
        allowed &= ~incidents | (index.team_ids == -1) | np.isin(index.team_ids, list(team_ids))
    if len(excluded_ids):
        allowed &= ~np.isin(index.ids, np.fromiter(excluded_ids, dtype=np.int64))
    return allowed


def rank(index: KnowledgeIndex, query_text: str, query_vector: np.ndarray | None, *, mode: str = "hybrid",
         limit: int = 50, allowed: np.ndarray | None = None) -> Ranked:
    """Documents of each kind ranked for the query; `allowed` (see allowed_mask) filters them."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    docs = index.docs
    if not docs:
        return Ranked(by_kind={})
    if allowed is None:
        allowed = np.ones(len(docs), dtype=bool)
    dense = lexical = None
    dense_scored = None  # with approximate search: which documents have a dense score at all
    if mode in ("dense", "hybrid"):
        if len(docs) <= EXACT_SEARCH_LIMIT:
            dense = index.vectors @ query_vector
        else:
            dense = np.full(len(docs), -1.0, dtype=np.float32)
            dense_scored = np.zeros(len(docs), dtype=bool)
            for position, score in index.dense_search(query_vector, DENSE_CANDIDATES):
                dense[position] = score
                dense_scored[position] = True
            # Small kinds (categories, runbooks) are always scored exactly: the approximate
            # search over a large incident set could otherwise leave them out.
            small = index.background_positions
            dense[small] = index.vectors[small] @ query_vector
            dense_scored[small] = True
    lexical_weight = 1.0
    if mode in ("lexical", "hybrid"):
        lexical = index.lexical_scores(query_text)
        if mode == "hybrid" and index.known_codes(query_text):
            lexical_weight = CODE_MATCH_WEIGHT
    by_kind = {}
    incidents_by_retriever = {}
    for kind in ("incident", "runbook", "category"):
        positions = index.positions_by_kind.get(kind, np.zeros(0, dtype=np.int64))
        positions = positions[allowed[positions]]
        fused: dict[int, float] = defaultdict(float)
        alone = {}
        if dense is not None:
            # Only documents the search returned are ranked (not the unscored rest of 100,000).
            scored = positions if dense_scored is None else positions[dense_scored[positions]]
            alone["dense"] = _rank_positions(dense, scored, limit * 2, require_positive=False)
        if lexical is not None:
            alone["lexical"] = _rank_positions(lexical, positions, limit * 2, require_positive=True)
        for retriever, ranked_positions in alone.items():
            weight = lexical_weight if retriever == "lexical" else 1.0
            for r, p in enumerate(ranked_positions):
                fused[p] += weight / (RRF_K + r + 1)
        if kind == "incident":
            incidents_by_retriever = alone
        ordered = sorted(fused.items(), key=lambda item: -item[1])[:limit]
        by_kind[kind] = [Hit(position=p, score=s, rank=r) for r, (p, s) in enumerate(ordered)]
    return Ranked(by_kind=by_kind, dense=dense, lexical=lexical, incidents_by_retriever=incidents_by_retriever)


@dataclass
class CategoryScore:
    category: str
    score: float
    confidence: float = 0.0
    neighbours: list[int] = field(default_factory=list)  # positions of supporting incidents


def _sharpened(values: dict[str, float], sharpness: float) -> dict[str, float]:
    """Scores as a distribution that favours the best few: exp((score - best) / sharpness)."""
    if not values:
        return {}
    best = max(values.values())
    return _normalized({k: float(np.exp((v - best) / sharpness)) for k, v in values.items()})


def _background_best(index: KnowledgeIndex, scores: np.ndarray, floor: float) -> dict[str, float]:
    """Each described category's best score among its description (weight 1) and runbook sections (weight 0.5)."""
    best: dict[str, float] = {}
    for position in index.background_positions:
        doc = index.docs[position]
        if doc.category:
            weight = 1.0 if doc.kind == "category" else 0.5
            best[doc.category] = max(best.get(doc.category, floor), weight * float(scores[position]))
    return best


def _description_evidence(best_dense: dict[str, float], best_lexical: dict[str, float]) -> dict[str, float]:
    """How well the failure matches each category's description and its runbooks.

    Scores, not ranks, are fused here: over a few dozen categories RRF would flatten the
    difference between a clear match and a near miss. Each retriever's scores become a
    distribution (dense: cosine sharpened; lexical: BM25 over its best), and the two are averaged.
    """
    parts = []
    if best_dense:
        parts.append(_sharpened(best_dense, DENSE_SHARPNESS))
    if best_lexical and max(best_lexical.values()) > 0:
        parts.append(_sharpened(best_lexical, max(best_lexical.values()) * LEXICAL_SHARPNESS))
    combined: dict[str, float] = defaultdict(float)
    for part in parts:
        for category, value in part.items():
            combined[category] += value / len(parts)
    return dict(combined)


def _normalized(values: dict[str, float]) -> dict[str, float]:
    total = sum(values.values())
    return {k: v / total for k, v in values.items()} if total > 0 else {}


# The evidence about each candidate category that the learned fusion (apps/knowledge/fusion.py)
# weighs, one column each. "fixed" is the hand-weighted sum above (WEIGHTS); the others are raw:
# cosine to the category's centroid, its share of the neighbours' votes, its description's best
# dense and lexical match and whether it has one at all (those three fade with the category's own
# history, like the prior), and the cosine to the label's own name ("expired credential or
# certificate" says much about itself even when nobody described it).
# "borrowed_dense" / "borrowed_lexical" let a team's own label use our descriptions and runbooks
# through its meaning: the description evidence of our categories, averaged with weights by how
# close each one's description is to the label's name ("time and date handling" borrows mostly
# from our time-zone category).
FEATURES = ("fixed", "prototype", "neighbours", "neighbours_dense", "neighbours_lexical", "description_dense",
            "described", "description_lexical", "label", "borrowed_dense", "borrowed_lexical")
ALIGNMENT_SHARPNESS = 0.05  # cosine differences between a label's name and our descriptions that matter


def softmax(logits: np.ndarray) -> np.ndarray:
    probabilities = np.exp(logits - logits.max())
    return probabilities / probabilities.sum()


def default_fusion_weights(temperature: float = TEMPERATURE) -> np.ndarray:
    """The fixed ranking as fusion weights: the hand-weighted score alone, sharpened by the temperature."""
    weights = np.zeros(len(FEATURES))
    weights[0] = 1.0 / temperature
    return weights


def category_evidence(index: KnowledgeIndex, ranked: Ranked, query_vector: np.ndarray | None, candidates: list[str],
                      *, weights_by_doc: dict[int, float] | None = None,
                      prototypes: dict[str, np.ndarray] | None = None, history: dict[str, int] | None = None,
                      label_vectors: dict[str, np.ndarray] | None = None,
                      weights: dict[str, float] | None = None) -> tuple[np.ndarray, dict[str, list[int]]]:
    """One row of FEATURES per candidate (in the order given), and the incidents supporting each."""
    weights = weights or WEIGHTS
    weights_by_doc = weights_by_doc or {}
    history = history or {}
    candidate_set = set(candidates)
    docs = index.docs

    support: dict[str, list[int]] = defaultdict(list)

    def votes(positions: list[int]) -> dict[str, float]:
        """The nearest incidents' categories, each weighted by rank and operators' feedback."""
        found: dict[str, float] = defaultdict(float)
        for rank_, position in enumerate(positions[:NEIGHBOURS]):
            doc = docs[position]
            if doc.category in candidate_set:
                found[doc.category] += weights_by_doc.get(doc.id, 1.0) / (rank_ + 3)
        return _normalized(dict(found))

    fused_positions = [hit.position for hit in ranked.by_kind.get("incident", [])]
    for position in fused_positions[:NEIGHBOURS]:
        if docs[position].category in candidate_set:
            support[docs[position].category].append(position)
    neighbours = votes(fused_positions)
    by_retriever = {name: votes(positions) for name, positions in ranked.incidents_by_retriever.items()}

    # Best description/runbook score of every described category ({} when that retriever did not run).
    all_dense = _background_best(index, ranked.dense, -1.0) if ranked.dense is not None else {}
    all_lexical = _background_best(index, ranked.lexical, 0.0) if ranked.lexical is not None else {}
    best_dense = {c: v for c, v in all_dense.items() if c in candidate_set}
    best_lexical = {c: v for c, v in all_lexical.items() if c in candidate_set}
    described = _description_evidence(best_dense, best_lexical)
    # A category's description counts as much as DESCRIPTION_PRIOR_INCIDENTS of its own incidents.
    fade = {c: DESCRIPTION_PRIOR_INCIDENTS / (DESCRIPTION_PRIOR_INCIDENTS + history.get(c, 0)) for c in candidates}
    description_votes = {category: (value - 1.0 / len(described)) * fade[category]
                         for category, value in described.items()}

    prototype_cosines: dict[str, float] = {}
    if prototypes and query_vector is not None and ranked.dense is not None:
        prototype_cosines = {c: float(prototypes[c] @ query_vector) for c in candidates if c in prototypes}
    prototype_scores = _sharpened(prototype_cosines, DENSE_SHARPNESS)

    lexical_top = max(best_lexical.values(), default=0.0)
    # A label's name is compared with the query's vector: not in a lexical-only ranking.
    label_vectors = label_vectors if label_vectors and query_vector is not None and ranked.dense is not None else {}
    borrowed = _borrowed_description(index, candidates, label_vectors, all_dense, all_lexical)
    rows = np.zeros((len(candidates), len(FEATURES)))
    for row, category in enumerate(candidates):
        fixed = (weights["neighbours"] * neighbours.get(category, 0.0)
                 + weights["description"] * description_votes.get(category, 0.0)
                 + weights["prototype"] * prototype_scores.get(category, 0.0))
        rows[row] = (
            fixed,
            prototype_cosines.get(category, 0.0),
            neighbours.get(category, 0.0),
            by_retriever.get("dense", {}).get(category, 0.0),
            by_retriever.get("lexical", {}).get(category, 0.0),
            fade[category] * best_dense.get(category, 0.0),
            fade[category] * (category in best_dense or category in best_lexical),
            fade[category] * best_lexical.get(category, 0.0) / lexical_top if lexical_top > 0 else 0.0,
            float(label_vectors[category] @ query_vector) if category in label_vectors else 0.0,
            *borrowed.get(category, (0.0, 0.0)),
        )
    return rows, support


def _borrowed_description(index: KnowledgeIndex, candidates: list[str], label_vectors: dict[str, np.ndarray],
                          dense: dict[str, float], lexical: dict[str, float]) -> dict[str, tuple[float, float]]:
    """(dense, lexical) description evidence each candidate label borrows from our described
    categories, weighted by how close their descriptions are to the label's name."""
    positions = [p for p in index.positions_by_kind.get("category", []) if index.docs[p].category]
    if not positions or not label_vectors:
        return {}
    described = [index.docs[p].category for p in positions]
    descriptions = index.vectors[positions]
    dense_values = np.array([dense.get(c, 0.0) for c in described])
    lexical_top = max(lexical.values(), default=0.0)
    lexical_values = np.array([lexical.get(c, 0.0) / lexical_top if lexical_top > 0 else 0.0 for c in described])
    borrowed = {}
    for category in candidates:
        if category not in label_vectors:
            continue
        closeness = descriptions @ label_vectors[category]
        alignment = np.exp((closeness - closeness.max()) / ALIGNMENT_SHARPNESS)
        alignment /= alignment.sum()
        borrowed[category] = (float(alignment @ dense_values), float(alignment @ lexical_values))
    return borrowed


def score_categories(index: KnowledgeIndex, ranked: Ranked, query_vector: np.ndarray | None, candidates: list[str],
                     *, weights_by_doc: dict[int, float] | None = None, prototypes: dict[str, np.ndarray] | None = None,
                     history: dict[str, int] | None = None, label_vectors: dict[str, np.ndarray] | None = None,
                     fusion: np.ndarray | None = None, weights: dict[str, float] | None = None,
                     temperature: float = TEMPERATURE) -> list[CategoryScore]:
    """Candidate categories, most likely first, with confidences summing to 1.
    `history`: resolved incidents per category (see category_history), which fade descriptions;
    `fusion`: weights of FEATURES learned from the team's history (fusion.fit_weights); without
    them the fixed, hand-weighted ranking with the fitted temperature."""
    if not candidates:
        return []
    evidence, support = category_evidence(index, ranked, query_vector, candidates, weights_by_doc=weights_by_doc,
                                          prototypes=prototypes, history=history, label_vectors=label_vectors,
                                          weights=weights)
    logits = evidence @ (default_fusion_weights(temperature) if fusion is None else fusion)
    probabilities = softmax(logits)
    scores = [CategoryScore(category=c, score=float(logit), confidence=float(p), neighbours=support.get(c, []))
              for c, logit, p in zip(candidates, logits, probabilities)]
    scores.sort(key=lambda s: (-s.score, s.category))
    return scores


def candidate_categories(index: KnowledgeIndex, allowed: np.ndarray | None = None, *,
                         described: bool = True) -> list[str]:
    """Every category a (permitted) incident was resolved with, plus (`described`) the described taxonomy."""
    found = set()
    for position, doc in enumerate(index.docs):
        permitted = (doc.kind == "category" and described
                     or doc.kind == "incident" and (allowed is None or allowed[position]))
        if doc.category and permitted:
            found.add(doc.category)
    return sorted(found)


def category_history(index: KnowledgeIndex, allowed: np.ndarray | None = None) -> dict[str, int]:
    """How many resolved incidents of each category the index holds."""
    counts: dict[str, int] = defaultdict(int)
    for position in index.positions_by_kind.get("incident", []):
        if allowed is None or allowed[position]:
            counts[index.docs[position].category] += 1
    return dict(counts)


def category_prototypes(index: KnowledgeIndex, allowed: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Unit-length centroid of the incident vectors of each category."""
    groups: dict[str, list[int]] = defaultdict(list)
    for position, doc in enumerate(index.docs):
        if doc.kind == "incident" and doc.category and (allowed is None or allowed[position]):
            groups[doc.category].append(position)
    prototypes = {}
    for category, positions in groups.items():
        centroid = index.vectors[positions].mean(axis=0)
        norm = np.linalg.norm(centroid)
        if norm > 0:
            prototypes[category] = (centroid / norm).astype(np.float32)
    return prototypes
