"""How sure the headline guess is: Platt scaling of the top hypothesis, and when to make none.

The ranking's softmax says how the candidates compare, not how often the first one is right: on
text unlike the team's history it is confidently wrong. So the headline's confidence is a
logistic regression (Platt scaling) on two numbers of the ranking, the top probability (as
log-odds) and its margin over the second, fitted on held-out guesses of the labelled sets in
fixtures/incidents (`manage.py knowledge_eval --fit`). Below HEADLINE_THRESHOLD the assistant
makes no headline guess and says it is not sure. Pure functions, no database.
"""

from dataclasses import dataclass
from itertools import pairwise

import numpy as np

# Fitted by `manage.py knowledge_eval --fit` on the four labelled sets pooled (hybrid, learned
# weights): weights of (log-odds of the top probability, margin over the second, 1).
PLATT = (0.946, -0.340, 0.249)
# The lowest calibrated confidence whose guesses reached precision 0.85 on those sets, pooled
# (cross-fitted: 0.857 at coverage 0.687; the README has each set's numbers).
HEADLINE_THRESHOLD = 0.58
TARGET_PRECISION = 0.85
RIDGE = 1e-3  # keeps the fit finite on a set the features separate perfectly
# Never certain: the best bin of the evaluation was right 94% of the time, not always.
MAX_CONFIDENCE = 0.99


def _features(top: np.ndarray, second: np.ndarray) -> np.ndarray:
    top = np.clip(top, 1e-6, 1 - 1e-6)
    return np.column_stack([np.log(top / (1 - top)), top - second, np.ones(len(top))])


def calibrated(top: float, second: float, platt=PLATT) -> float:
    """The probability that the top hypothesis is the root cause."""
    logit = float((_features(np.array([top]), np.array([second])) @ np.array(platt))[0])
    return min(MAX_CONFIDENCE, float(1 / (1 + np.exp(-logit))))


def fit_platt(top, second, correct) -> tuple[float, float, float]:
    """Platt weights maximizing the likelihood of `correct` (Newton's method, a small ridge)."""
    x = _features(np.asarray(top, dtype=float), np.asarray(second, dtype=float))
    y = np.asarray(correct, dtype=float)
    weights = np.zeros(x.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-x @ weights))
        gradient = x.T @ (p - y) + RIDGE * weights
        hessian = (x * (p * (1 - p))[:, None]).T @ x + RIDGE * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-8:
            break
    return tuple(float(w) for w in weights)


@dataclass
class ReliabilityBin:
    low: float
    high: float
    count: int
    confidence: float  # mean confidence in the bin
    accuracy: float


def reliability(confidences, correct, bins: int = 10) -> list[ReliabilityBin]:
    """Guesses grouped by confidence: how often each group was right (the empty bins left out)."""
    confidences, correct = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=float)
    table = []
    edges = np.linspace(0, 1, bins + 1)
    for low, high in pairwise(edges):
        mask = (confidences > low) & (confidences <= high) if low > 0 else (confidences <= high)
        if mask.any():
            table.append(ReliabilityBin(float(low), float(high), int(mask.sum()), float(confidences[mask].mean()),
                                        float(correct[mask].mean())))
    return table


def expected_calibration_error(confidences, correct, bins: int = 10) -> float:
    """The gap between confidence and accuracy, averaged over bins weighted by their share."""
    total = len(confidences)
    return float(sum(b.count / total * abs(b.confidence - b.accuracy)
                     for b in reliability(confidences, correct, bins))) if total else 0.0


def selective(confidences, correct, threshold: float) -> tuple[float | None, float]:
    """(precision of the guesses at or above `threshold`, the share of failures that get one)."""
    confidences, correct = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=bool)
    chosen = confidences >= threshold
    coverage = float(chosen.mean()) if len(chosen) else 0.0
    return (float(correct[chosen].mean()) if chosen.any() else None), coverage


def choose_threshold(confidences, correct, target: float = TARGET_PRECISION) -> float:
    """The lowest threshold (most coverage) whose guesses reach `target` precision; 1.0 if none does."""
    for threshold in sorted(set(np.round(np.asarray(confidences, dtype=float), 2))):
        precision, _ = selective(confidences, correct, threshold)
        if precision is not None and precision >= target:
            return float(threshold)
    return 1.0


def cross_fitted(folds, top, second, correct) -> np.ndarray:
    """Calibrated confidence of each guess by a Platt fit on the other folds' guesses only."""
    folds, top, second = np.asarray(folds), np.asarray(top, dtype=float), np.asarray(second, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    result = np.zeros(len(top))
    for fold in np.unique(folds):
        held = folds == fold
        platt = fit_platt(top[~held], second[~held], correct[~held])
        result[held] = [calibrated(t, s, platt) for t, s in zip(top[held], second[held])]
    return result
