"""Calibrating the headline guess: Platt scaling, reliability, the threshold and what it covers."""

import numpy as np
import pytest

from apps.knowledge import calibration


@pytest.fixture
def overconfident():
    """Guesses whose top probability claims more than they deliver: right with probability top**3."""
    rng = np.random.default_rng(3)
    top = rng.uniform(0.3, 1.0, 2000)
    second = (1 - top) * rng.uniform(0.2, 0.9, 2000)
    return top, second, rng.uniform(size=2000) < top ** 3


def test_platt_scaling_removes_most_of_the_calibration_error(overconfident):
    top, second, correct = overconfident
    folds = np.arange(len(top)) % 5
    calibrated = calibration.cross_fitted(folds, top, second, correct)
    before = calibration.expected_calibration_error(top, correct)
    after = calibration.expected_calibration_error(calibrated, correct)
    assert before > 0.15 and after < before / 3


def test_reliability_bins_count_every_guess_and_say_how_often_each_was_right():
    table = calibration.reliability([0.05, 0.15, 0.15, 0.95], [False, True, False, True])
    assert [(round(b.low, 1), b.count, b.accuracy) for b in table] == [(0.0, 1, 0.0), (0.1, 2, 0.5), (0.9, 1, 1.0)]


def test_the_threshold_is_the_lowest_that_reaches_the_target_precision():
    confidences = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
    correct = [True, True, True, False, True, False]
    threshold = calibration.choose_threshold(confidences, correct, target=0.75)
    assert threshold == 0.5
    assert calibration.selective(confidences, correct, threshold) == (0.8, 5 / 6)
    assert calibration.choose_threshold(confidences, [False] * 6) == 1.0  # none: no headline at all


def test_a_headline_is_never_certain():
    assert calibration.calibrated(0.999999, 0.0) <= calibration.MAX_CONFIDENCE
