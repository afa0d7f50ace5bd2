"""Adopting an adapted sentence space only when cross-validation on the team's history says it ranks better.

`adapt()` (the `adapt_model` command, the `tasks.adapt_model` worker task) takes the resolved
incidents with a root cause, scores them by `knowledge_eval`'s k-fold evaluation twice, in the
stock space and with a map fitted inside each fold from the other folds (adaptation.py), and
records both in `EvaluationResult` (dataset "team history"). Only when the adapted ranking has the
better top-1 and no worse top-3 is a map fitted on all of them written beside the stock model,
`<knowledge dir>/adaptation/map-<hash>.npy`, and named in `adoption.json` with the figures; otherwise
the stock space is what `adoption.json` names. The caller then rebuilds the index.

An index records the space its vectors are in (`meta["space"]`, the map's file name, absent for
stock); a query, a label name and an incremental update use that index's map (`index_map`), so an
adoption takes effect with the rebuild that follows it, never half-way.
"""

import hashlib
import json
import os
from dataclasses import asdict, dataclass

import numpy as np
from django.utils import timezone

from apps.knowledge import adaptation
from apps.knowledge.spaces import adaptation_directory, adopted_space

DATASET = "team history"


@dataclass
class Adoption:
    incidents: int
    stock: dict | None  # top1, top3, mrr of the stock space (None: too little history to evaluate)
    adapted: dict | None
    space: str | None  # the map adopted now, None: the stock space stays
    reason: str


def adapt(*, folds: int = 5) -> Adoption:
    """Evaluate the stock and the adapted space on the resolved incidents, adopt the adapted one only if better."""
    from apps.knowledge.evaluation import evaluate, fit_adaptation, prepare

    rows = _history()
    if len(rows) < max(adaptation.MIN_EXAMPLES, folds * 2) or len({r.category_label for r in rows}) < 2:
        return _record(Adoption(len(rows), None, None, None, "too little history: the stock space stays"))
    prepared = prepare(rows)
    reports = {"stock": evaluate(prepared, folds=folds), "adapted": evaluate(prepared, folds=folds, adapt=True)}
    figures = {name: {"top1": r.top1, "top3": r.top3, "mrr": r.mrr} for name, r in reports.items()}
    _save_evaluations(reports, folds)
    stock, adapted = figures["stock"], figures["adapted"]
    if not (adapted["top1"] > stock["top1"] and adapted["top3"] >= stock["top3"]):
        return _record(Adoption(len(rows), stock, adapted, None, "the adapted space does not rank better"))
    matrix = fit_adaptation(prepared, list(range(len(rows))))
    # Named by its content: the same history gives the same map (the fit is seeded), so a redelivered
    # task adopts the same space again and nothing is rebuilt.
    name = f"map-{hashlib.sha256(matrix.tobytes()).hexdigest()[:16]}.npy"
    adaptation_directory().mkdir(parents=True, exist_ok=True)
    np.save(adaptation_directory() / name, matrix)
    return _record(Adoption(len(rows), stock, adapted, name, "the adapted space ranks better"))


def adapt_and_rebuild(*, folds: int = 5) -> tuple[Adoption, bool]:
    """`adapt`, then a full rebuild and new evidence weights when the adopted space is not the
    index's (a redelivered task finds them equal and does not rebuild)."""
    from apps.knowledge.index import IndexReader
    from apps.knowledge.indexing import build_index, index_directory
    from apps.knowledge.learning import learn_fusion

    adoption = adapt(folds=folds)
    if adopted_space() == IndexReader(index_directory()).disk_meta().get("space"):
        return adoption, False
    build_index()
    learn_fusion()
    return adoption, True


def _history():
    """The resolved incidents with a root cause, as labelled rows (what the index learns from)."""
    from apps.incidents.importer import HistoryRow
    from apps.incidents.models import Incident, IncidentStatus

    incidents = (Incident.objects.filter(status=IncidentStatus.RESOLVED, root_cause_category__isnull=False)
                 .select_related("root_cause_category").order_by("pk"))
    return [HistoryRow(line=i.pk, title=i.title, text=i.description or i.log_tail[-1500:],
                       category_label=i.root_cause_category.name, root_cause=i.root_cause_description,
                       error_message=i.error_message) for i in incidents.iterator()]


def _save_evaluations(reports, folds: int) -> None:
    from apps.knowledge.models import EvaluationResult

    for name, report in reports.items():
        EvaluationResult.objects.create(
            dataset=DATASET, mode="hybrid" if name == "stock" else "hybrid+adapted", folds=folds,
            incidents=report.incidents, top1=report.top1, top3=report.top3, mrr=report.mrr,
            same_category_in_top5=report.same_category_in_top5, baseline_top1=report.baseline_top1)


def _record(adoption: Adoption) -> Adoption:
    directory = adaptation_directory()
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".adoption.json.{os.getpid()}"
    partial.write_text(json.dumps({**asdict(adoption), "at": timezone.now().isoformat()}, indent=1))
    os.replace(partial, directory / "adoption.json")
    return adoption
