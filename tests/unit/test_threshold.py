"""The decision threshold: fixed, or chosen on held-out rows for max F1 or a minimum precision."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score

from pipelines.core.config import DecisionThreshold
from pipelines.evaluation.metrics import classification_metrics, on_threshold
from pipelines.model.threshold import choose_threshold, cut_metrics


@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(0)
    y = (rng.random(3000) < 0.25).astype(int)
    p = np.clip(0.3 * y + rng.normal(0.35, 0.15, len(y)), 0.001, 0.999).round(3)  # rounded: ties
    return y, p


def test_cut_metrics_equal_sklearn_at_every_distinct_score(scored):
    y, p = scored
    cuts, precision, _, f1 = cut_metrics(y, p)

    assert len(cuts) == len(np.unique(p))
    for i in range(0, len(cuts), 37):
        predicted = (p >= cuts[i]).astype(int)
        assert precision[i] == pytest.approx(precision_score(y, predicted))
        assert f1[i] == pytest.approx(f1_score(y, predicted))


def test_max_f1_takes_the_f1_best_cut(scored):
    y, p = scored

    chosen = choose_threshold(y, p, DecisionThreshold(strategy="max_f1"))

    brute = max(np.unique(p), key=lambda t: f1_score(y, (p >= t).astype(int)))
    assert chosen["threshold"] == pytest.approx(brute)
    assert chosen["threshold"] != 0.5 and chosen["reason"].startswith("best F1")
    assert f1_score(y, p >= chosen["threshold"]) > f1_score(y, p >= 0.5)


def test_min_precision_takes_the_lowest_cut_reaching_it(scored):
    y, p = scored

    chosen = choose_threshold(y, p, DecisionThreshold(strategy="min_precision", value=0.8))

    t = chosen["threshold"]
    assert precision_score(y, p >= t) >= 0.8
    lower = np.unique(p)[np.unique(p) < t]
    assert all(precision_score(y, p >= c) < 0.8 for c in lower[-20:]), "no lower cut reaches the target"


@pytest.mark.parametrize(
    ("setting", "y", "reason"),
    [
        (DecisionThreshold(strategy="fixed", value=0.3), [0, 1], "fixed at 0.3"),
        (DecisionThreshold(strategy="max_f1", value=0.4), [], "fell back to 0.4: the validation split has 0 rows"),
        (DecisionThreshold(strategy="max_f1", value=0.4), [1, 1], "needs both classes"),
        (DecisionThreshold(strategy="min_precision", value=0.99), [0, 1, 0, 1], "no cut reaches precision 0.99"),
    ],
)
def test_fixed_and_fallbacks_use_the_configured_value_and_say_why(setting, y, reason):
    p = np.array([0.9, 0.2, 0.8, 0.1][: len(y)])

    chosen = choose_threshold(np.array(y), p, setting)

    assert chosen["threshold"] == setting.value and reason in chosen["reason"]


def test_on_threshold_keeps_predictions_and_ranking(scored):
    y, p = scored

    moved = on_threshold(p, 0.42, 0.5)

    np.testing.assert_array_equal(moved >= 0.5, p >= 0.42)
    np.testing.assert_array_equal(np.argsort(moved, kind="stable"), np.argsort(p, kind="stable"))
    assert classification_metrics(y, moved)["roc_auc"] == classification_metrics(y, p)["roc_auc"]
    assert (
        classification_metrics(y, p, 0.42)["confusion_matrix"] == classification_metrics(y, moved)["confusion_matrix"]
    )
