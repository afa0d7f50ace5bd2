"""Adapting the sentence space to a team's root causes, adopted only when cross-validation says it ranks better."""

import json

import numpy as np
import pytest

from apps.incidents.services import category_for_label
from apps.knowledge import adaptation, adoption, indexing, spaces
from apps.knowledge.evaluation import EvalReport
from apps.knowledge.models import EvaluationResult
from apps.knowledge.suggest import suggest_for_failure
from tests.knowledge.conftest import resolved_incident
from tests.knowledge.test_learning import HISTORY


def system_heavy(count: int, seed: int, dimension: int = 32):
    """Vectors dominated by the system an incident happened on (4 of them), with its cause (3) a
    weaker direction: the stock space's nearest neighbours share the system, not the cause."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(np.random.default_rng(0).normal(size=(dimension, dimension)))[0]
    systems, causes = basis[:4], basis[4:7]
    labels = [f"cause-{n % 3}" for n in range(count)]
    vectors = np.array([3.0 * systems[rng.integers(4)] + 0.8 * causes[n % 3] + rng.normal(0, 0.3, dimension)
                        for n in range(count)], dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), labels


def nearest_neighbour_accuracy(train, train_labels, test, test_labels) -> float:
    nearest = np.argmax(test @ train.T, axis=1)
    return float(np.mean([train_labels[j] == truth for j, truth in zip(nearest, test_labels)]))


def test_a_map_fitted_on_resolved_incidents_groups_unseen_ones_by_cause_not_by_system():
    train, train_labels = system_heavy(90, seed=1)
    test, test_labels = system_heavy(60, seed=2)
    matrix = adaptation.fit(train, train_labels)

    stock = nearest_neighbour_accuracy(train, train_labels, test, test_labels)
    adapted = nearest_neighbour_accuracy(adaptation.apply(matrix, train), train_labels,
                                         adaptation.apply(matrix, test), test_labels)
    assert stock < 0.65 and adapted > stock + 0.1
    assert np.allclose(np.linalg.norm(adaptation.apply(matrix, test), axis=1), 1.0, atol=1e-5)


def test_too_little_history_gives_no_map_and_the_stock_vectors_stay():
    vectors, labels = system_heavy(adaptation.MIN_EXAMPLES - 1, seed=3)
    assert adaptation.fit(vectors, labels) is None
    assert adaptation.apply(None, vectors) is vectors


@pytest.fixture
def team_history(team):
    for label, texts in HISTORY.items():
        category_for_label(label)
        for number, host in enumerate(("eu", "us", "apac", "latam")):
            for text in texts:
                resolved_incident(team, f"{label} #{number}", f"{text} on {host}-etl", category_for_label(label).slug)


def figures(top1, top3):
    return EvalReport(mode="hybrid", folds=5, incidents=36, top1=top1, top3=top3, mrr=top1, same_category_in_top5=0,
                      baseline_top1=0.33, calibration_error=0, mean_log_loss=0)


def evaluated_as(monkeypatch, stock, adapted):
    """Cross-validation (evaluation.evaluate) answering these figures for the stock and the adapted space."""
    monkeypatch.setattr("apps.knowledge.evaluation.evaluate",
                        lambda prepared, folds=5, adapt=False, **_: adapted if adapt else stock)


@pytest.mark.django_db
@pytest.mark.urls("tests.knowledge.urls")
def test_an_adapted_space_that_ranks_better_is_adopted_and_the_index_and_queries_move_into_it(
        team_history, fake_encoder, monkeypatch):
    indexing.build_index()
    stock_vectors = indexing.reader().get().vectors.copy()
    evaluated_as(monkeypatch, stock=figures(0.70, 0.90), adapted=figures(0.80, 0.90))

    result, rebuilt = adoption.adapt_and_rebuild()

    assert rebuilt and result.space and result.adapted["top1"] == 0.80
    recorded = json.loads((adoption.adaptation_directory() / "adoption.json").read_text())
    assert recorded["space"] == result.space and recorded["stock"]["top1"] == 0.70
    assert (adoption.adaptation_directory() / result.space).is_file()
    index = indexing.reader().get()
    matrix = spaces.space_map(result.space)
    assert index.meta["space"] == result.space
    assert np.allclose(index.vectors, adaptation.apply(matrix, stock_vectors), atol=1e-5)
    assert set(EvaluationResult.objects.filter(dataset="team history").values_list("mode", flat=True)) == {
        "hybrid", "hybrid+adapted"}
    # A query is asked in the index's space, and the ranking still names the team's cause.
    hypotheses = suggest_for_failure("the supplier file from the bank arrived after the cutoff again").hypotheses
    assert hypotheses[0].name == "Late partner files"
    # Asked again with the space unchanged, nothing is rebuilt (a redelivered task).
    assert adoption.adapt_and_rebuild()[1] is False


@pytest.mark.django_db
@pytest.mark.parametrize("adapted", [figures(0.70, 0.90), figures(0.75, 0.85)], ids=["equal", "worse-top3"])
def test_an_adapted_space_that_is_not_better_is_not_adopted_and_the_stock_index_stays(
        team_history, fake_encoder, monkeypatch, adapted):
    indexing.build_index()
    version = indexing.reader().get().version
    evaluated_as(monkeypatch, stock=figures(0.70, 0.90), adapted=adapted)

    result, rebuilt = adoption.adapt_and_rebuild()

    assert result.space is None and not rebuilt
    assert adoption.adopted_space() is None and not list(adoption.adaptation_directory().glob("map-*.npy"))
    index = indexing.reader().get()
    assert index.version == version and index.meta.get("space") is None


@pytest.mark.django_db
def test_the_real_evaluation_decides_adoption_by_its_own_figures(team_history, fake_encoder):
    result, _ = adoption.adapt_and_rebuild()

    assert result.incidents == 36 and result.stock and result.adapted
    better = result.adapted["top1"] > result.stock["top1"] and result.adapted["top3"] >= result.stock["top3"]
    assert (result.space is not None) == better
    assert (adoption.adopted_space() is not None) == better


@pytest.mark.django_db
def test_too_little_history_keeps_the_stock_space(team, fake_encoder):
    resolved_incident(team, "Landing zone full", "No space left on device", "disk-full")
    result, rebuilt = adoption.adapt_and_rebuild()
    assert result.space is None and result.stock is None and not rebuilt and "too little history" in result.reason
