"""Learned fusion: how much each kind of evidence counts, learned from a team's own history.

The fixed ranking (ranking.WEIGHTS) was chosen on our development set, and which evidence
predicts a root cause depends on how a team writes: terse error messages reward exact tokens
(BM25) and our category descriptions; narrative post-mortems reward embeddings and the team's
own labels, and our descriptions mislead where a team's label only sounds like one of ours.
So the index learns the weights from its resolved incidents: each is held out in turn (stratified
folds), asked as a query against the rest, and described by ranking.FEATURES for every
candidate category; a conditional logit (a softmax over the candidates, fitted by maximum
likelihood) gives one weight per feature. Its prior is the fixed ranking (the fit is pulled
towards it, PRIOR_STRENGTH), so a small history moves the weights little. Being fitted by
likelihood on held-out queries, its softmax is also the calibrated confidence.

Functions over a KnowledgeIndex, no database: `learning.learn_fusion` runs them on the
database's history after a rebuild, `evaluation` inside each cross-validation fold.
"""

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from apps.knowledge.index import KnowledgeIndex
from apps.knowledge.ranking import (FEATURES, allowed_mask, category_evidence, category_history, category_prototypes,
                                    default_fusion_weights, rank, softmax)

FOLDS = 5
# Fewer held-out queries than this (or a single category) leave the fixed ranking in place.
MIN_EXAMPLES = 30
# The fit is pulled towards the fixed ranking by PRIOR_STRENGTH * |w - w_fixed|^2 (per example
# log loss): chosen between 0.003 and 0.03 over the four labelled sets in fixtures/incidents.
PRIOR_STRENGTH = 0.003


@dataclass
class Example:
    """A resolved incident asked as a query: its document is held out while it is asked."""

    doc_id: int
    label: str
    text: str
    vector: np.ndarray | None


def assign_folds(labels: list[str], folds: int, seed: int) -> list[int]:
    """Stratified: each category's items are dealt round-robin across folds."""
    by_label = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    rng = random.Random(seed)
    assignment = [0] * len(labels)
    offset = 0
    for label in sorted(by_label):
        members = by_label[label]
        rng.shuffle(members)
        for j, i in enumerate(members):
            assignment[i] = (offset + j) % folds
        offset += len(members)
    return assignment


def held_out_evidence(index: KnowledgeIndex, examples: list[Example], *,
                      candidates_for: Callable[[np.ndarray], list[str]], mode: str = "hybrid",
                      excluded_ids: frozenset = frozenset(), label_vectors: dict[str, np.ndarray] | None = None,
                      weights_by_doc: dict[int, float] | None = None, folds: int = FOLDS,
                      seed: int = 7) -> list[tuple[np.ndarray, int]]:
    """(FEATURES of every candidate, position of the true one) for each example, asked with its
    own fold (and `excluded_ids`) left out of the index; `candidates_for(allowed)` names the
    categories a query may be given."""
    fold_of = assign_folds([e.label for e in examples], folds, seed)
    found = []
    for fold in range(folds):
        held = [e for e, f in zip(examples, fold_of) if f == fold]
        if not held:
            continue
        allowed = allowed_mask(index, excluded_ids=set(excluded_ids) | {e.doc_id for e in held})
        candidates = candidates_for(allowed)
        prototypes = category_prototypes(index, allowed) if mode != "lexical" else None
        history = category_history(index, allowed)
        for example in held:
            if example.label not in candidates:  # its category has no other incident here
                continue
            vector = example.vector if mode != "lexical" else None
            ranked = rank(index, example.text, vector, mode=mode, allowed=allowed)
            evidence, _ = category_evidence(index, ranked, vector, candidates, weights_by_doc=weights_by_doc,
                                            prototypes=prototypes, history=history, label_vectors=label_vectors)
            found.append((evidence, candidates.index(example.label)))
    return found


def fit_weights(evidence: list[tuple[np.ndarray, int]], prior: np.ndarray | None = None,
                strength: float = PRIOR_STRENGTH) -> np.ndarray | None:
    """Weights of FEATURES maximizing the held-out likelihood of the true categories, pulled
    towards `prior` (the fixed ranking); None when there is too little to learn from."""
    from scipy.optimize import minimize  # only a fit needs it; pages that import this module do not

    usable = [(rows, truth) for rows, truth in evidence if len(rows) > 1]
    if len(usable) < MIN_EXAMPLES:
        return None
    prior = default_fusion_weights() if prior is None else prior

    def loss_and_gradient(weights):
        loss, gradient = 0.0, np.zeros_like(weights)
        for rows, truth in usable:
            probabilities = softmax(rows @ weights)
            loss -= np.log(probabilities[truth] + 1e-12)
            gradient -= rows[truth] - probabilities @ rows
        offset = weights - prior
        return (loss / len(usable) + strength * offset @ offset,
                gradient / len(usable) + 2 * strength * offset)

    result = minimize(loss_and_gradient, prior.copy(), jac=True, method="L-BFGS-B")
    return result.x


def label_vectors(names: dict[str, str]) -> dict[str, np.ndarray]:
    """The vector of each category's name (slug -> name), embedded once and cached by content hash."""
    from apps.knowledge.embedding import embed_documents

    slugs = sorted(names)
    vectors = embed_documents([names[slug] for slug in slugs]) if slugs else []
    return dict(zip(slugs, vectors))


def weights_from_meta(meta: dict) -> np.ndarray | None:
    """The learned weights an index's meta.json holds, if they fit the current FEATURES."""
    fitted = meta.get("fusion") or {}
    if fitted.get("features") != list(FEATURES):
        return None
    return np.array(fitted["weights"], dtype=np.float64)
