"""`manage.py knowledge_eval --incidents FILE [FILE ...] --folds 5 --mode hybrid`: root-cause
accuracy by cross-validation, and how far the headline guess's confidence can be trusted."""

from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from apps.incidents.importer import read_history
from apps.knowledge import calibration
from apps.knowledge.evaluation import calibrate, evaluate, fit_temperature, prepare
from apps.knowledge.models import EvaluationResult
from apps.knowledge.ranking import MODES


class Command(BaseCommand):
    help = ("Hold out each fold of a labelled incident file and report top-1/top-3 root-cause accuracy, "
            "mean reciprocal rank and same-category neighbours beside a majority-class baseline, then the "
            "calibration of the headline guess (ECE, a reliability table) and its selective precision and coverage.")

    def add_arguments(self, parser):
        parser.add_argument("--incidents", type=Path, nargs="+", required=True,
                            help="Labelled JSONL or CSV files (import format), each evaluated on its own.")
        parser.add_argument("--folds", type=int, default=5)
        parser.add_argument("--mode", choices=[*MODES, "all"], default="hybrid")
        parser.add_argument("--fixed", action="store_true",
                            help="Score with the fixed, hand-chosen weights instead of weights learned in each fold.")
        parser.add_argument("--fit", action="store_true",
                            help="Also fit the fixed ranking's confidence temperature (hybrid), and the headline's "
                                 "Platt weights and threshold over all the files given (calibration.py).")
        parser.add_argument("--adapt", action="store_true",
                            help="Also score each mode in a sentence space adapted inside each fold from the other "
                                 "folds (adaptation.py); printed as <mode>+adapted.")
        parser.add_argument("--reliability", action="store_true", help="Print each set's reliability table.")
        parser.add_argument("--no-save", action="store_true", help="Do not record the result for the admin page.")

    def handle(self, *args, incidents: list[Path], folds: int, mode: str, fixed: bool, fit: bool, reliability: bool,
               no_save: bool, adapt: bool, **options):
        for path in incidents:
            if not path.is_file():
                raise CommandError(f"{path} does not exist; pass a labelled .jsonl or .csv file.")
        modes = list(MODES) if mode == "all" else [mode]
        weighting = ("fixed weights" if fixed else
                     "evidence weights learned in each fold from the other folds' incidents, as the index does")
        self.stdout.write(f"Scoring: {weighting}. Headline threshold {calibration.HEADLINE_THRESHOLD:.2f} "
                          f"(calibrated confidence; precision and coverage of the guesses at or above it).")
        pooled = []
        for path in incidents:
            rows, errors = read_history(path)
            for line, message in errors:
                self.stderr.write(f"{path.name}:{line}: skipped: {message}")
            if len(rows) < folds * 2:
                raise CommandError(f"{path.name}: {len(rows)} usable incidents are too few for {folds} folds.")
            self.stdout.write(f"\n{path.name}: embedding {len(rows)} incidents (cached after the first run)…")
            prepared = prepare(rows)
            self.stdout.write(f"{'mode':<15}{'top-1':>7}{'top-3':>7}{'MRR':>7}{'same@5':>8}{'base':>7}"
                              f"{'ECE raw':>9}{'ECE':>7}{'precision':>11}{'coverage':>10}")
            runs = [(name, False) for name in modes] + [(name, True) for name in modes if adapt and name != "lexical"]
            for name, adapted in runs:
                report = evaluate(prepared, folds=folds, mode=name, learned=not fixed, adapt=adapted)
                calibrated = calibrate(report)
                if name == "hybrid" and not adapted:
                    pooled.append((path.name, report))
                name = f"{name}+adapted" if adapted else name
                precision = "—" if calibrated.precision is None else f"{calibrated.precision:.3f}"
                self.stdout.write(f"{name:<15}{report.top1:>7.3f}{report.top3:>7.3f}{report.mrr:>7.3f}"
                                  f"{report.same_category_in_top5:>8.3f}{report.baseline_top1:>7.3f}"
                                  f"{calibrated.raw_ece:>9.3f}{calibrated.ece:>7.3f}{precision:>11}"
                                  f"{calibrated.coverage:>10.3f}")
                if reliability:
                    self._reliability(calibrated.reliability)
                if not no_save:
                    no_save = not self._save(path, name, folds, report, calibrated)
            if fit:
                temperature, report = fit_temperature(prepared, folds=folds)
                self.stdout.write(f"Best temperature {temperature}: log loss {report.mean_log_loss:.3f}, "
                                  f"ECE {report.calibration_error:.3f} (set ranking.TEMPERATURE)")
        if fit and pooled:
            self._fit_headline(pooled)

    def _reliability(self, table):
        self.stdout.write(f"    {'confidence':<12}{'guesses':>8}{'mean':>7}{'right':>7}")
        for row in table:
            self.stdout.write(f"    {row.low:.1f}–{row.high:.1f}{'':<5}{row.count:>8}{row.confidence:>7.2f}"
                              f"{row.accuracy:>7.2f}")

    def _fit_headline(self, pooled):
        """Platt weights on every set's held-out guesses, and the threshold reaching the target
        precision on their cross-fitted confidences (each set's folds stay separate folds)."""
        folds, top, second, correct = [], [], [], []
        for number, (_, report) in enumerate(pooled):
            for fold, first, runner_up, right in report.headlines:
                folds.append(number * 100 + fold)
                top.append(first)
                second.append(runner_up)
                correct.append(right)
        platt = calibration.fit_platt(top, second, correct)
        confidences = calibration.cross_fitted(folds, top, second, correct)
        threshold = calibration.choose_threshold(confidences, correct)
        precision, coverage = calibration.selective(confidences, correct, threshold)
        self.stdout.write(f"\nHeadline calibration over {len(top)} guesses of {len(pooled)} sets: "
                          f"PLATT = ({', '.join(f'{w:.3f}' for w in platt)}), ECE "
                          f"{calibration.expected_calibration_error(top, correct):.3f} before, "
                          f"{calibration.expected_calibration_error(confidences, correct):.3f} after; "
                          f"HEADLINE_THRESHOLD = {threshold:.2f} gives precision {precision or 0:.3f} at coverage "
                          f"{coverage:.3f} (target precision {calibration.TARGET_PRECISION}); set them in calibration.py.")
        self._reliability(calibration.reliability(confidences, correct))
        offset = 0
        for name, report in pooled:
            part = slice(offset, offset + len(report.headlines))
            offset += len(report.headlines)
            precision, coverage = calibration.selective(confidences[part], np.asarray(correct)[part], threshold)
            self.stdout.write(f"  {name}: precision {'—' if precision is None else f'{precision:.3f}'} "
                              f"at coverage {coverage:.3f}")

    def _save(self, path: Path, mode: str, folds: int, report, calibrated) -> bool:
        try:
            EvaluationResult.objects.create(
                dataset=path.name, mode=mode, folds=folds, incidents=report.incidents, top1=report.top1,
                top3=report.top3, mrr=report.mrr, same_category_in_top5=report.same_category_in_top5,
                baseline_top1=report.baseline_top1, ece=calibrated.ece, threshold=calibrated.threshold,
                headline_precision=calibrated.precision, coverage=calibrated.coverage)
        except DatabaseError:
            self.stderr.write("Result not recorded for the admin page: run `manage.py migrate` first.")
            return False
        return True
