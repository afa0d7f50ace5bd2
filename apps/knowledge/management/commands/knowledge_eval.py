"""`manage.py knowledge_eval --incidents FILE --folds 5 --mode hybrid`: root-cause accuracy by cross-validation."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from apps.incidents.importer import read_history
from apps.knowledge.evaluation import evaluate, fit_temperature, prepare
from apps.knowledge.models import EvaluationResult
from apps.knowledge.ranking import MODES


class Command(BaseCommand):
    help = ("Hold out each fold of a labelled incident file and report top-1/top-3 root-cause accuracy, "
            "mean reciprocal rank and same-category neighbours beside a majority-class baseline.")

    def add_arguments(self, parser):
        parser.add_argument("--incidents", type=Path, required=True, help="Labelled JSONL or CSV (import format).")
        parser.add_argument("--folds", type=int, default=5)
        parser.add_argument("--mode", choices=[*MODES, "all"], default="hybrid")
        parser.add_argument("--fixed", action="store_true",
                            help="Score with the fixed, hand-chosen weights instead of weights learned in each fold.")
        parser.add_argument("--fit", action="store_true",
                            help="Also fit the fixed ranking's confidence temperature (hybrid).")
        parser.add_argument("--no-save", action="store_true", help="Do not record the result for the admin page.")

    def handle(self, *args, incidents: Path, folds: int, mode: str, fixed: bool, fit: bool, no_save: bool, **options):
        if not incidents.is_file():
            raise CommandError(f"{incidents} does not exist; pass a labelled .jsonl or .csv file.")
        rows, errors = read_history(incidents)
        for line, message in errors:
            self.stderr.write(f"{incidents.name}:{line}: skipped: {message}")
        if len(rows) < folds * 2:
            raise CommandError(f"{len(rows)} usable incidents are too few for {folds} folds.")
        self.stdout.write(f"Embedding {len(rows)} incidents (cached after the first run)…")
        prepared = prepare(rows)
        modes = list(MODES) if mode == "all" else [mode]
        weighting = ("fixed weights" if fixed else
                     "evidence weights learned in each fold from the other folds' incidents, as the index does")
        self.stdout.write(f"\nScoring: {weighting}.")
        self.stdout.write(f"\n{'mode':<9}{'top-1':>8}{'top-3':>8}{'MRR':>8}{'same-cat@5':>12}{'ECE':>7}"
                          f"{'baseline top-1':>16}")
        for name in modes:
            report = evaluate(prepared, folds=folds, mode=name, learned=not fixed)
            self.stdout.write(f"{name:<9}{report.top1:>8.3f}{report.top3:>8.3f}{report.mrr:>8.3f}"
                              f"{report.same_category_in_top5:>12.3f}{report.calibration_error:>7.3f}"
                              f"{report.baseline_top1:>16.3f}")
            if not no_save:
                try:
                    EvaluationResult.objects.create(
                        dataset=incidents.name, mode=name, folds=folds, incidents=report.incidents, top1=report.top1,
                        top3=report.top3, mrr=report.mrr, same_category_in_top5=report.same_category_in_top5,
                        baseline_top1=report.baseline_top1)
                except DatabaseError:
                    no_save = True
                    self.stderr.write("Result not recorded for the admin page: run `manage.py migrate` first.")
        if fit:
            temperature, report = fit_temperature(prepared, folds=folds)
            self.stdout.write(f"\nBest temperature {temperature}: log loss {report.mean_log_loss:.3f}, "
                              f"ECE {report.calibration_error:.3f} (set ranking.TEMPERATURE)")
