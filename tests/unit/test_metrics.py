"""Evaluation maths: point metrics against scikit-learn, bootstrap intervals, paired differences, slices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import ADULT_CONFIG
from sklearn import metrics as skm

from pipelines.core.config import METRICS, load_config
from pipelines.evaluation.metrics import (
    _interval,
    _share_below,
    assess,
    assess_groups,
    batched_metrics,
    classification_metrics,
    evaluate_frame,
    slice_codes,
    slice_keys,
)

CONFIG = load_config(ADULT_CONFIG)
SCHEMA = CONFIG.data_schema
POLICY = CONFIG.thresholds.gate.model_copy(update={"bootstrap_samples": 200})


def scores(n: int, seed: int, skill: float = 0.3, rate: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities that separate the classes by ``skill`` (0: noise)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    p = np.clip(rng.random(n) * (1 - skill) + skill * y, 0, 1)
    return y, p


@pytest.mark.parametrize(("seed", "decimals"), [(0, None), (1, None), (2, 1), (3, 2)])
def test_classification_metrics_match_sklearn(seed, decimals):
    y, p = scores(500, seed)
    if decimals is not None:
        p = np.round(p, decimals)  # many tied scores
    pred = (p >= 0.5).astype(int)

    result = classification_metrics(y, p)

    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-6)
    assert result["precision"] == pytest.approx(skm.precision_score(y, pred), abs=1e-6)
    assert result["recall"] == pytest.approx(skm.recall_score(y, pred), abs=1e-6)
    assert result["f1"] == pytest.approx(skm.f1_score(y, pred), abs=1e-6)
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-6)
    assert result["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()
    assert result["n"] == 500
    assert result["positives"] == int(y.sum())


def test_threshold_is_inclusive_at_one_half():
    result = classification_metrics(np.array([1, 0]), np.array([0.5, 0.49]))

    assert result["confusion_matrix"] == [[1, 0], [0, 1]]
    assert result["accuracy"] == 1.0


def test_undefined_metrics_are_none_and_empty_predictions_score_zero():
    y = np.zeros(20, dtype=int)
    p = np.linspace(0, 0.4, 20)

    result = classification_metrics(y, p)

    assert result["roc_auc"] is None  # one class only
    assert result["recall"] is None  # no positives
    assert result["precision"] == 0.0  # no positive predictions
    assert result["accuracy"] == 1.0


def test_bootstrap_intervals_contain_the_point_estimate():
    y, p = scores(1000, 4)

    result = assess(y, p, None, POLICY)

    assert result["sufficient"] is True
    assert "live" not in result and "difference" not in result
    for metric in METRICS:
        low, high = result["candidate"]["ci"][metric]
        assert low <= result["candidate"][metric] <= high
        assert low < high


def test_bootstrap_intervals_narrow_with_more_rows():
    def width(n: int) -> float:
        y, p = scores(n, 5)
        low, high = assess(y, p, None, POLICY)["candidate"]["ci"]["roc_auc"]
        return high - low

    # The width shrinks like 1/sqrt(n): 16x the rows gives about a quarter of the width.
    assert width(6400) < width(400) / 2


def test_assess_is_deterministic_for_a_seed():
    y, p = scores(500, 6)

    assert assess(y, p, None, POLICY, seed=3) == assess(y, p, None, POLICY, seed=3)
    assert assess(y, p, None, POLICY, seed=3) != assess(y, p, None, POLICY, seed=4)


def test_paired_difference_is_positive_when_the_candidate_is_much_better():
    y, good = scores(1000, 7, skill=0.6)
    live = np.random.default_rng(8).random(1000)

    result = assess(y, good, live, POLICY)

    diff = result["difference"]["roc_auc"]
    expected = result["candidate"]["roc_auc"] - result["live"]["roc_auc"]
    assert diff["point"] == pytest.approx(expected, abs=1e-6)
    assert diff["point"] > 0.3
    assert diff["ci"][0] > 0.2
    assert diff["ci"][0] <= diff["point"] <= diff["ci"][1]
    assert result["live"]["ci"]["roc_auc"][1] < result["candidate"]["ci"]["roc_auc"][0]


def test_paired_difference_of_identical_models_is_exactly_zero():
    y, p = scores(500, 9)

    result = assess(y, p, p.copy(), POLICY)

    # Same resamples for both models: every bootstrap difference is 0, unlike two independent intervals.
    for metric in METRICS:
        assert result["difference"][metric] == {"point": 0.0, "ci": [0.0, 0.0], "below_margin": 0.0, "margin": 0.01}


def test_small_groups_are_insufficient_without_intervals():
    y, p = scores(POLICY.min_slice_size - 1, 10)

    result = assess(y, p, p, POLICY, min_rows=POLICY.min_slice_size)

    assert result["sufficient"] is False
    assert "ci" not in result["candidate"]
    assert "difference" not in result
    assert result["candidate"]["n"] == POLICY.min_slice_size - 1
    assert result["live"]["accuracy"] == result["candidate"]["accuracy"]


def test_slice_keys_bins_numerics_by_slice_bins():
    df = pd.DataFrame({"age": [17, 29.9, 30, 44, 45, 59.5, 60, 90, np.nan]})

    keys = slice_keys(df, ["age"], SCHEMA)

    assert keys.tolist() == [
        "age=<30",
        "age=<30",
        "age=30-45",
        "age=30-45",
        "age=45-60",
        "age=45-60",
        "age=>=60",
        "age=>=60",
        "age=missing",
    ]


def test_slice_keys_combines_features():
    df = pd.DataFrame({"sex": ["Female", "Male", None], "race": ["White", "Black", "White"]}, index=[10, 11, 12])

    keys = slice_keys(df, ["sex", "race"], SCHEMA)

    assert keys.tolist() == ["sex=Female, race=White", "sex=Male, race=Black", "sex=missing, race=White"]
    assert keys.index.tolist() == [10, 11, 12]


@pytest.fixture(scope="module")
def scored_rows():
    """600 scored test rows: 540 men, 60 women (below min_slice_size), ages across every bin."""
    rng = np.random.default_rng(11)
    n = 600
    y = (rng.random(n) < 0.25).astype(int)
    frame = pd.DataFrame(
        {
            "age": rng.integers(17, 91, n).astype(float),
            "sex": np.where(np.arange(n) < 60, "Female", "Male"),
            "race": rng.choice(["White", "Black"], n, p=[0.8, 0.2]),
            "income": np.where(y == 1, ">50K", "<=50K"),
        }
    )
    candidate = np.clip(rng.random(n) * 0.6 + 0.4 * y, 0, 1)
    live = np.clip(rng.random(n) * 0.8 + 0.2 * y, 0, 1)
    return frame, y, candidate, live


def test_evaluate_frame_reports_overall_baseline_and_slices(scored_rows):
    frame, y, candidate, live = scored_rows

    report = evaluate_frame(frame, candidate, live, CONFIG, train_positive_rate=0.24)

    assert report["test_rows"] == 600
    assert report["baseline"]["accuracy"] == pytest.approx(1 - y.mean(), abs=1e-6)  # majority: negative
    assert report["overall"]["candidate"]["positives"] == int(y.sum())
    assert report["overall"]["difference"]["roc_auc"]["point"] > 0
    assert list(report["slices"]) == ["sex", "race", "age", "sex x race"]
    assert sorted(report["slices"]["sex"]) == ["sex=Female", "sex=Male"]
    assert sorted(report["slices"]["age"]) == ["age=30-45", "age=45-60", "age=<30", "age=>=60"]
    female = report["slices"]["sex"]["sex=Female"]
    assert female["sufficient"] is False
    assert female["candidate"]["n"] == 60
    assert "ci" not in female["candidate"]
    male = report["slices"]["sex"]["sex=Male"]
    assert male["sufficient"] is True
    assert male["candidate"]["n"] == 540
    assert "roc_auc" in male["difference"]
    combined = report["slices"]["sex x race"]
    assert sum(g["candidate"]["n"] for g in combined.values()) == 600
    assert all(key.startswith(("sex=Female, race=", "sex=Male, race=")) for key in combined)


def test_evaluate_frame_baseline_follows_the_training_majority(scored_rows):
    frame, y, candidate, _ = scored_rows

    report = evaluate_frame(frame, candidate, None, CONFIG, train_positive_rate=0.7)

    assert report["baseline"]["accuracy"] == pytest.approx(y.mean(), abs=1e-6)  # majority: positive
    assert "live" not in report["overall"]
    assert all("difference" not in g for groups in report["slices"].values() for g in groups.values())


def test_overall_gets_intervals_even_below_the_slice_minimum():
    # The overall comparison with the live model must not vanish when the test set is small: the
    # gate's own min_test_rows check is what judges whether the evidence suffices.
    y, p = scores(POLICY.min_slice_size - 1, 11)

    result = assess(y, p, 1 - p, POLICY)

    assert result["sufficient"] is True
    assert result["difference"][POLICY.primary_metric]["point"] > 0


def test_below_margin_is_the_share_of_resamples_trailing_live_by_more_than_the_margin():
    y, p = scores(2000, 5)
    worse = np.clip(p + np.random.default_rng(1).normal(0, 0.6, len(p)), 0, 1)

    tight = assess(y, worse, p, POLICY, margin=0.0)["difference"]["roc_auc"]
    loose = assess(y, worse, p, POLICY, margin=0.5)["difference"]["roc_auc"]

    assert tight["point"] < 0 and tight["below_margin"] > 0.99, "a clearly worse candidate trails in every resample"
    assert loose["below_margin"] == 0.0 and loose["margin"] == 0.5


def naive_bootstrap(y, p, seed, resamples, threshold=0.5):
    """The bootstrap written out: gather each resample's rows and rank them (the resamples the evaluation uses)."""
    idx = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))
    return batched_metrics(y[idx], p[idx], threshold)


@pytest.fixture(scope="module")
def tied_rows():
    """4000 rows with rounded (tied) scores, a candidate and a weaker live model, over three columns to slice."""
    rng = np.random.default_rng(21)
    n = 4000
    frame = pd.DataFrame(
        {
            "age": np.where(rng.random(n) < 0.02, np.nan, rng.integers(17, 91, n)),
            "sex": rng.choice(["Female", "Male", None], n, p=[0.3, 0.68, 0.02]),
            "race": rng.choice(["White", "Black", "Asian-Pac-Islander", "Other"], n, p=[0.7, 0.2, 0.07, 0.03]),
        }
    )
    y = (rng.random(n) < np.where(frame["sex"] == "Male", 0.3, 0.15)).astype(int)
    frame["income"] = np.where(y == 1, ">50K", "<=50K")
    candidate = np.round(np.clip(0.35 * y + rng.normal(0.3, 0.2, n), 0, 1), 2)
    live = np.round(np.clip(0.2 * y + rng.normal(0.35, 0.2, n), 0, 1), 2)
    return frame, y, candidate, live


def test_every_slice_group_equals_sklearn_and_a_naive_bootstrap_on_the_same_resamples(tied_rows):
    frame, y, candidate, live = tied_rows
    config = CONFIG.model_copy(update={"thresholds": CONFIG.thresholds.model_copy(update={"gate": POLICY})})
    cuts = (0.5, 0.45)

    report = evaluate_frame(frame, candidate, live, config, train_positive_rate=0.25, thresholds=cuts)

    checked = 0
    for features in config.slices:
        keys = slice_keys(frame, features, SCHEMA).to_numpy()
        groups = report["slices"][" x ".join(features)]
        assert list(groups) == sorted(set(keys))
        for i, (name, result) in enumerate(groups.items()):
            mine = keys == name
            yy = y[mine]
            for who, p, cut in (("candidate", candidate, cuts[0]), ("live", live, cuts[1])):
                pred = (p[mine] >= cut).astype(int)
                figures = result[who]
                assert figures["accuracy"] == pytest.approx(skm.accuracy_score(yy, pred), abs=1e-6)
                assert figures["precision"] == pytest.approx(skm.precision_score(yy, pred, zero_division=0), abs=1e-6)
                assert figures["f1"] == pytest.approx(skm.f1_score(yy, pred, zero_division=0), abs=1e-6)
                if 0 < yy.sum() < len(yy):
                    assert figures["recall"] == pytest.approx(skm.recall_score(yy, pred), abs=1e-6)
                    assert figures["roc_auc"] == pytest.approx(skm.roc_auc_score(yy, p[mine]), abs=1e-6)
                assert figures["confusion_matrix"] == skm.confusion_matrix(yy, pred, labels=[0, 1]).tolist()
            assert result["sufficient"] is (len(yy) >= POLICY.min_slice_size)
            if not result["sufficient"]:
                continue
            # Group i of a slice is resampled on its own rows with seed i + 1.
            boot = {
                who: naive_bootstrap(yy, p[mine], i + 1, POLICY.bootstrap_samples, cut)
                for who, p, cut in (("candidate", candidate, cuts[0]), ("live", live, cuts[1]))
            }
            for m in METRICS:
                for who in ("candidate", "live"):
                    assert result[who]["ci"][m] == _interval(boot[who][m], POLICY.confidence)
                difference = boot["candidate"][m] - boot["live"][m]
                assert result["difference"][m]["ci"] == _interval(difference, POLICY.confidence)
                below = _share_below(difference, -POLICY.max_slice_regression)
                assert result["difference"][m]["below_margin"] == below
            checked += 1
    assert checked >= 8, "most groups are large enough to be bootstrapped"
    overall = naive_bootstrap(y, candidate, 0, POLICY.bootstrap_samples)
    assert report["overall"]["candidate"]["ci"]["roc_auc"] == _interval(overall["roc_auc"], POLICY.confidence)


def test_the_chunk_of_resamples_held_at_once_does_not_change_the_results(tied_rows):
    frame, y, candidate, live = tied_rows
    codes, groups = slice_codes(frame, ["race"], SCHEMA)
    args = (y, candidate, live, codes, len(groups), POLICY, range(1, len(groups) + 1), 200)

    one_resample_at_a_time = assess_groups(*args, budget=1)
    all_at_once = assess_groups(*args, budget=10**9)

    assert one_resample_at_a_time == all_at_once
    assert groups == ["race=Asian-Pac-Islander", "race=Black", "race=Other", "race=White"]
    assert [g["sufficient"] for g in all_at_once] == [True, True, False, True]  # Other: ~3% of 4000 rows < 200
    assert all_at_once[0]["candidate"]["ci"]["roc_auc"][0] < all_at_once[0]["candidate"]["ci"]["roc_auc"][1]


def reference_keys(df: pd.DataFrame, features: list[str]) -> list[str]:
    """Slice keys written out row by row."""
    out = []
    for _, row in df.iterrows():
        parts = []
        for name in features:
            value = row[name]
            if pd.isna(value):
                text = "missing"
            elif SCHEMA.feature(name).kind == "numeric":
                text = "<30" if value < 30 else "30-45" if value < 45 else "45-60" if value < 60 else ">=60"
            else:
                text = str(value)
            parts.append(f"{name}={text}")
        out.append(", ".join(parts))
    return out


@pytest.mark.parametrize("features", [["sex"], ["age"], ["sex", "race"], ["race", "age", "sex"]])
def test_slice_codes_number_the_sorted_keys(tied_rows, features):
    frame = tied_rows[0].iloc[:400]
    expected = reference_keys(frame, features)

    codes, groups = slice_codes(frame, features, SCHEMA)

    assert groups == sorted(set(expected))
    assert [groups[c] for c in codes] == expected
