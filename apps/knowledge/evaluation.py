"""Offline evaluation of root-cause suggestions by k-fold cross-validation, in memory.

Each fold's incidents are held out: they are not neighbours, not in the category prototypes,
and their labels do not define the candidate categories, which are the labels seen in the other
folds (a team's taxonomy is the labels it uses). Category descriptions and runbooks (written
without seeing the data) stay in the index for every fold. The database is not touched.
"""

import copy
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from apps.incidents.importer import HistoryRow
from apps.incidents.taxonomy import DEFAULT_CATEGORIES, canonical_slug
from apps.knowledge import adaptation, calibration
from apps.knowledge.embedding import embed_documents
from apps.knowledge.fusion import Example, assign_folds, fit_weights, held_out_evidence, label_vectors
from apps.knowledge.index import Document, KnowledgeIndex, doc_id
from apps.knowledge.indexing import incident_text
from apps.knowledge.ranking import (TEMPERATURE, WEIGHTS, allowed_mask, candidate_categories, category_history,
                                    category_prototypes, default_fusion_weights, rank, score_categories)
from apps.knowledge.runbooks import RUNBOOK_DIR, parse_runbook
from apps.knowledge.textproc import content_hash


@dataclass
class EvalReport:
    mode: str
    folds: int
    incidents: int
    top1: float
    top3: float
    mrr: float
    same_category_in_top5: float
    baseline_top1: float
    calibration_error: float
    mean_log_loss: float
    # Each held-out failure's headline guess: (fold, top probability, second probability, right?).
    headlines: list[tuple[int, float, float, bool]] = field(default_factory=list)


@dataclass
class CalibrationReport:
    """The headline guess's confidence before and after Platt scaling (cross-fitted over the
    folds), its reliability, and what a threshold on it gives."""

    raw_ece: float
    ece: float
    reliability: list[calibration.ReliabilityBin]
    threshold: float
    precision: float | None
    coverage: float
    calibrated: list[float]
    correct: list[bool]


def calibrate(report: EvalReport, threshold: float = calibration.HEADLINE_THRESHOLD) -> CalibrationReport:
    folds, top, second, correct = (list(column) for column in zip(*report.headlines))
    confidences = calibration.cross_fitted(folds, top, second, correct)
    precision, coverage = calibration.selective(confidences, correct, threshold)
    return CalibrationReport(
        raw_ece=calibration.expected_calibration_error(top, correct),
        ece=calibration.expected_calibration_error(confidences, correct),
        reliability=calibration.reliability(confidences, correct), threshold=threshold, precision=precision,
        coverage=coverage, calibrated=list(confidences), correct=correct)


def _background_documents() -> list[Document]:
    """Category descriptions and runbook sections: knowledge that exists before any incident."""
    documents = []
    for number, (slug, name, description) in enumerate(DEFAULT_CATEGORIES, start=1):
        text = f"{name}\n{description}"
        documents.append(Document(id=doc_id("category", number), kind="category", ref=slug, title=name, text=text,
                                  hash=content_hash(text), category=slug))
    number = 0
    for path in sorted(RUNBOOK_DIR.glob("*.md")):
        if path.name.lower() == "readme.md":
            continue
        parsed = parse_runbook(path.read_text(encoding="utf-8"), path.stem)
        for section in parsed.sections:
            number += 1
            text = f"{parsed.title}\n{section.heading}\n{section.body}"
            documents.append(Document(id=doc_id("runbook", number), kind="runbook", ref=str(number),
                                      title=section.heading, text=text, hash=content_hash(text),
                                      category=canonical_slug(parsed.category) if parsed.category else ""))
    return documents


@dataclass
class Prepared:
    """A labelled file embedded once: the in-memory index, and each row as a query."""

    index: KnowledgeIndex
    labels: list[str]
    queries: list[str]
    query_vectors: np.ndarray
    label_vectors: dict[str, np.ndarray]


def prepare(rows: list[HistoryRow], progress=None) -> Prepared:
    """Embed everything once: the in-memory index, the query vectors of every row, the labels' names."""
    labels = [canonical_slug(r.category_label) for r in rows]
    incident_docs = []
    for i, (row, label) in enumerate(zip(rows, labels)):
        text = incident_text(row.title, row.text, row.error_message, row.root_cause)
        incident_docs.append(Document(id=doc_id("incident", i + 1), kind="incident", ref=str(i), title=row.title,
                                      text=text, hash=content_hash(text), category=label))
    documents = incident_docs + _background_documents()
    vectors = embed_documents([d.text for d in documents], progress=progress)
    queries = [incident_text(r.title, r.text, r.error_message) for r in rows]
    query_vectors = embed_documents(queries, progress=progress)
    index = KnowledgeIndex(directory=None)
    index.upsert(documents, vectors)
    # A label's name as the team wrote it (as an import names its category), ours for our taxonomy.
    names = {slug: name for slug, name, _ in DEFAULT_CATEGORIES}
    for row, label in zip(rows, labels):
        names.setdefault(label, row.category_label.strip())
    return Prepared(index, labels, queries, query_vectors,
                    label_vectors({label: names[label] for label in set(labels)}))


def in_space(prepared: Prepared, matrix: np.ndarray | None) -> Prepared:
    """The same labelled file with every vector (documents, queries, label names) mapped by an
    adaptation (adaptation.apply); itself when there is no map."""
    if matrix is None:
        return prepared
    index = copy.copy(prepared.index)  # documents and BM25 shared; exact dense search reads `vectors`
    index.vectors, index.derived = adaptation.apply(matrix, prepared.index.vectors), {}
    return Prepared(index, prepared.labels, prepared.queries, adaptation.apply(matrix, prepared.query_vectors),
                    {label: adaptation.apply(matrix, v) for label, v in prepared.label_vectors.items()})


def fit_adaptation(prepared: Prepared, rows: list[int], **options) -> np.ndarray | None:
    """An adaptation fitted on the incidents `rows` of the file only (their stock document vectors)."""
    positions = [prepared.index.position(doc_id("incident", i + 1)) for i in rows]
    return adaptation.fit(prepared.index.vectors[positions], [prepared.labels[i] for i in rows], **options)


def _training_labels(index: KnowledgeIndex, allowed: np.ndarray) -> list[str]:
    """The candidates of a fold: the labels of the incidents it may use (a team's taxonomy is the labels it uses)."""
    return candidate_categories(index, allowed, described=False)


def evaluate(stock: Prepared, *, folds: int = 5, mode: str = "hybrid", seed: int = 13, learned: bool = True,
             weights=None, temperature: float = TEMPERATURE, adapt: bool = False,
             adapt_options: dict | None = None) -> EvalReport:
    """Cross-validated accuracy. With `learned`, each fold's fusion weights are fitted on the other
    folds only (their incidents held out in turn, as `learning.learn_fusion` does on the database);
    with `adapt`, so is an adaptation of the sentence space (adaptation.py), and the fold is ranked in it."""
    labels = stock.labels
    fold_of = assign_folds(labels, folds, seed)
    top1 = top3 = rr = same5 = baseline = log_loss = 0.0
    confidences, correct, headlines = [], [], []
    for fold in range(folds):
        held_out = {i for i, f in enumerate(fold_of) if f == fold}
        training = [i for i in range(len(labels)) if i not in held_out]
        matrix = fit_adaptation(stock, training, **(adapt_options or {})) if adapt and mode != "lexical" else None
        prepared = in_space(stock, matrix)
        index = prepared.index
        held_out_ids = frozenset(doc_id("incident", i + 1) for i in held_out)
        allowed = allowed_mask(index, excluded_ids=held_out_ids)

        candidates = _training_labels(index, allowed)
        majority = Counter(labels[i] for i in training).most_common(1)[0][0]
        prototypes = category_prototypes(index, allowed) if mode != "lexical" else None
        history = category_history(index, allowed)
        fusion = None
        if learned:
            examples = [Example(doc_id("incident", i + 1), labels[i], prepared.queries[i], prepared.query_vectors[i])
                        for i in training]
            evidence = held_out_evidence(index, examples, mode=mode, excluded_ids=held_out_ids,
                                         candidates_for=lambda allowed: _training_labels(index, allowed),
                                         label_vectors=prepared.label_vectors)
            fusion = fit_weights(evidence, prior=default_fusion_weights(temperature))
        for i in sorted(held_out):
            vector = prepared.query_vectors[i] if mode != "lexical" else None
            ranked = rank(index, prepared.queries[i], vector, mode=mode, allowed=allowed)
            scores = score_categories(index, ranked, vector, candidates, prototypes=prototypes, history=history,
                                      label_vectors=prepared.label_vectors if learned else None, fusion=fusion,
                                      weights=weights, temperature=temperature)
            order = [s.category for s in scores]
            truth = labels[i]
            if truth in order:
                position = order.index(truth)
                rr += 1.0 / (position + 1)
                top1 += position == 0
                top3 += position < 3
                log_loss -= np.log(max(scores[position].confidence, 1e-6))
            else:
                log_loss -= np.log(1e-6)
            neighbours = [index.docs[h.position].category for h in ranked.by_kind.get("incident", [])[:5]]
            same5 += truth in neighbours
            baseline += truth == majority
            confidences.append(scores[0].confidence if scores else 0.0)
            correct.append(bool(order) and order[0] == truth)
            headlines.append((fold, confidences[-1], scores[1].confidence if len(scores) > 1 else 0.0, correct[-1]))
    n = len(labels)
    return EvalReport(mode=mode, folds=folds, incidents=n, top1=top1 / n, top3=top3 / n, mrr=rr / n,
                      same_category_in_top5=same5 / n, baseline_top1=baseline / n,
                      calibration_error=calibration.expected_calibration_error(confidences, correct),
                      mean_log_loss=log_loss / n, headlines=headlines)


def fit_temperature(prepared, *, folds: int = 5, weights=None) -> tuple[float, EvalReport]:
    """The softmax temperature of the fixed ranking with the lowest held-out log loss (hybrid mode);
    it is also the prior of the learned fusion."""
    best = None
    for temperature in (0.03, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3, 0.5):
        report = evaluate(prepared, folds=folds, mode="hybrid", learned=False, weights=weights or WEIGHTS,
                          temperature=temperature)
        if best is None or report.mean_log_loss < best[1].mean_log_loss:
            best = (temperature, report)
    return best
