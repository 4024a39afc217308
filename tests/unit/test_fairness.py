"""The fairness audit: per-group metrics with intervals, between-group gaps, and the gate's checks on them."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ADULT_CONFIG, write_config
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_score, roc_auc_score

from pipelines.core.config import FAIRNESS_CHECKS, Config, ConfigError, load_config
from pipelines.evaluation.fairness import (
    GROUP_METRICS,
    LIMITS,
    TOO_SMALL,
    audit,
    between_samples,
    bootstrap,
    fairness_checks,
    grouped_metrics,
    metric_frame,
)


def make_config(fairness: dict[str, Any] | None = None, protected: list[str] | None = None, **gate: Any) -> Config:
    """The Adult config with ``protected`` attributes, a fairness block and gate settings of the test's choosing."""
    raw = yaml.safe_load(ADULT_CONFIG.read_text())
    raw["protected_attributes"] = protected or ["sex"]
    raw["thresholds"]["fairness"] = fairness or {}
    raw["thresholds"]["gate"].update({"bootstrap_samples": 200, **gate})
    return Config.model_validate(raw, context={"base_dir": ADULT_CONFIG.parent})


def scored_group(sex: str, n: int, tpr: float, fpr: float, rng: np.random.Generator, base: float = 0.3):
    """``n`` rows of one group with exactly the given true- and false-positive rates at threshold 0.5."""
    pos = round(n * base)
    neg = n - pos
    tp, fp = round(pos * tpr), round(neg * fpr)
    y = np.r_[np.ones(pos, int), np.zeros(neg, int)]
    predicted = np.r_[np.arange(pos) < tp, np.arange(neg) < fp]
    p = np.where(predicted, rng.uniform(0.5, 1.0, n), rng.uniform(0.0, 0.5, n))
    frame = pd.DataFrame({"sex": sex, "race": "White", "age": 40.0}, index=range(n))
    return frame, y, p


def scored(*groups: tuple[str, int, float, float], seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    parts = [scored_group(sex, n, tpr, fpr, rng) for sex, n, tpr, fpr in groups]
    frame = pd.concat([f for f, _, _ in parts], ignore_index=True)
    return frame, np.concatenate([y for _, y, _ in parts]), np.concatenate([p for _, _, p in parts])


def check(checks: list[dict[str, Any]], name: str, attribute: str = "sex") -> dict[str, Any]:
    return next(c for c in checks if c["name"] == name and c["attribute"] == attribute)


# An FPR of 0.22 for one group and 0.05 for the other, the same TPR: the case issue 8 saw promoted.
UNFAIR = (("Female", 4000, 0.8, 0.22), ("Male", 4000, 0.8, 0.05))
FAIR = (("Female", 4000, 0.8, 0.05), ("Male", 4000, 0.8, 0.05))


def test_an_injected_fpr_gap_is_measured_and_fails_its_check():
    config = make_config({"max_equalized_odds_difference": 0.10})
    frame, y, p = scored(*UNFAIR)

    report = audit(frame, y, p, config)

    sex = report["attributes"]["sex"]
    assert sex["groups"]["sex=Female"]["false_positive_rate"] == pytest.approx(0.22)
    assert sex["groups"]["sex=Male"]["false_positive_rate"] == pytest.approx(0.05)
    odds = sex["candidate"]["equalized_odds_difference"]
    assert odds["value"] == pytest.approx(0.17)
    assert odds["ci"][0] < 0.17 < odds["ci"][1] < 0.25
    assert odds["metric"] == "false_positive_rate"
    assert odds["groups"] == ["sex=Female", "sex=Male"]
    (result,) = fairness_checks(report, config)
    assert result["success"] is False and result["sufficient"] is True
    assert result["bound"] == odds["ci"][1] and result["limit"] == 0.10 and result["severity"] == "block"
    assert result["detail"].startswith("sex: equalized odds difference 0.170 [")
    assert "(sex=Female vs sex=Male on FPR)" in result["detail"]
    assert f"upper bound {odds['ci'][1]:.3f} > limit 0.100" in result["detail"]


def test_a_fair_candidate_passes_every_configured_check():
    limits = {"max_equalized_odds_difference": 0.10, "max_demographic_parity_difference": 0.10}
    config = make_config({**limits, "min_demographic_parity_ratio": 0.8})
    frame, y, p = scored(*FAIR)

    checks = fairness_checks(audit(frame, y, p, config), config)

    assert [c["name"] for c in checks] == [
        "equalized_odds_difference",
        "demographic_parity_difference",
        "demographic_parity_ratio",
    ]
    assert all(c["success"] for c in checks), [c["detail"] for c in checks]
    assert "lower bound" in check(checks, "demographic_parity_ratio")["detail"]


def test_between_group_points_are_fairlearns_and_lie_in_their_intervals():
    frame, y, p = scored(("Female", 3000, 0.7, 0.1), ("Male", 5000, 0.85, 0.08))
    report = audit(frame, y, p, make_config())
    pred, sex = (p >= 0.5).astype(int), frame["sex"]

    between = report["attributes"]["sex"]["candidate"]
    expected = {
        "demographic_parity_difference": demographic_parity_difference(y, pred, sensitive_features=sex),
        "demographic_parity_ratio": demographic_parity_ratio(y, pred, sensitive_features=sex),
        "equalized_odds_difference": equalized_odds_difference(y, pred, sensitive_features=sex),
    }
    for name, value in expected.items():
        assert between[name]["value"] == pytest.approx(value, abs=1e-6)
        assert between[name]["ci"][0] <= between[name]["value"] <= between[name]["ci"][1]
    gap = between["largest_gaps"]["true_positive_rate"]
    assert gap["value"] == pytest.approx(0.15) and gap["groups"] == ["sex=Male", "sex=Female"]
    assert between["largest_gaps"]["false_negative_rate"]["groups"] == ["sex=Female", "sex=Male"]


def test_small_groups_are_listed_and_left_out_of_the_gaps():
    # 20 rows of a group whose every negative is flagged: it would dominate every gap if it counted.
    config = make_config({"min_group_size": 50, "max_equalized_odds_difference": 0.10}, protected=["race"])
    frame, y, p = scored(*FAIR)
    rng = np.random.default_rng(1)
    tiny, tiny_y, tiny_p = scored_group("Male", 20, 1.0, 1.0, rng)
    frame["race"] = np.where(frame.index % 2 == 0, "White", "Black")
    tiny["race"] = "Other"

    report = audit(pd.concat([frame, tiny], ignore_index=True), np.r_[y, tiny_y], np.r_[p, tiny_p], config)

    race = report["attributes"]["race"]
    assert race["too_small"] == ["race=Other"]
    other = race["groups"]["race=Other"]
    assert other["status"] == TOO_SMALL and other["size"] == 20 and other["false_positive_rate"] == 1.0
    assert "ci" not in other and "ci" in race["groups"]["race=White"]
    assert race["candidate"]["equalized_odds_difference"]["value"] < 0.05
    assert "race=Other" not in race["candidate"]["equalized_odds_difference"]["groups"]
    (result,) = fairness_checks(report, config)
    assert result["success"] and result["excluded_groups"] == ["race=Other"]
    assert "1 group(s) under 50 rows left out" in result["detail"]


def test_with_fewer_than_two_large_groups_the_check_is_not_judged():
    config = make_config({"min_group_size": 50, "max_equalized_odds_difference": 0.10})
    frame, y, p = scored(("Female", 30, 0.8, 0.5), ("Male", 3000, 0.8, 0.05))

    report = audit(frame, y, p, config)

    assert report["attributes"]["sex"]["sufficient"] is False
    assert "candidate" not in report["attributes"]["sex"]
    (result,) = fairness_checks(report, config)
    assert (result["success"], result["sufficient"], result["bound"]) == (False, False, None)
    assert "fewer than two groups with >= 50 rows" in result["detail"]


def test_undefined_metrics_are_none_not_nan():
    frame, y, p = scored(("Female", 200, 0.8, 0.1), ("Male", 200, 0.8, 0.1))
    men = (frame["sex"] == "Male").to_numpy()
    y[men], p[men] = 0, 0.1  # no positives and nothing flagged among the men

    report = audit(frame, y, p, make_config())

    men = report["attributes"]["sex"]["groups"]["sex=Male"]
    for metric in ("true_positive_rate", "false_negative_rate", "precision", "roc_auc"):
        assert men[metric] is None and men["ci"][metric] is None
    assert men["false_positive_rate"] == 0.0 and men["selection_rate"] == 0.0
    json.dumps(report, allow_nan=False)  # raises on any NaN left in the report


def test_batched_point_estimates_equal_fairlearns_metric_frame():
    rng = np.random.default_rng(3)
    n = 3000
    codes = rng.integers(0, 4, n)
    y = (rng.random(n) < 0.2 + 0.15 * codes).astype(int)
    p = np.round(np.clip(0.35 * y + 0.2 * codes / 3 + rng.normal(0.25, 0.2, n), 0, 1), 2)  # rounded: ties
    keys = pd.Series(np.array(["a", "b", "c", "d"])[codes], name="group")
    pred = (p >= 0.5).astype(int)

    reference = MetricFrame(
        metrics={
            "selection_rate": selection_rate,
            "true_positive_rate": true_positive_rate,
            "false_positive_rate": false_positive_rate,
            "false_negative_rate": false_negative_rate,
            "precision": partial(precision_score, zero_division=np.nan),
        },
        y_true=y,
        y_pred=pred,
        sensitive_features=keys,
    ).by_group
    reference["roc_auc"] = MetricFrame(metrics=roc_auc_score, y_true=y, y_pred=p, sensitive_features=keys).by_group
    batched = grouped_metrics(np.ones((1, n)), codes, y, p, 0.5)
    cells = metric_frame(y, p, keys, 0.5)  # the audit's point values: MetricFrame on weighted cells

    for metric in GROUP_METRICS:
        np.testing.assert_allclose(batched[metric][0], reference[metric].to_numpy(), atol=1e-12)
        np.testing.assert_allclose(cells[metric].to_numpy(), reference[metric].to_numpy(), atol=1e-12)
    figures = between_samples({m: batched[m] for m in GROUP_METRICS})
    assert figures["equalized_odds_difference"][0] == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=keys)
    )
    assert figures["demographic_parity_ratio"][0] == pytest.approx(
        demographic_parity_ratio(y, pred, sensitive_features=keys)
    )


def test_resample_blocks_do_not_change_the_bootstrap():
    rng = np.random.default_rng(4)
    n = 500
    y, p, codes = rng.integers(0, 2, n), rng.random(n), {"g": rng.integers(0, 3, n)}

    one_matrix = bootstrap(y, {"candidate": p}, codes, 0.5, 60, seed=7, block_cells=10**9)
    in_blocks = bootstrap(y, {"candidate": p}, codes, 0.5, 60, seed=7, block_cells=7 * n)

    for metric in GROUP_METRICS:
        np.testing.assert_array_equal(one_matrix["candidate", "g"][metric], in_blocks["candidate", "g"][metric])
    assert np.ptp(one_matrix["candidate", "g"]["roc_auc"], axis=0).min() > 0  # the resamples differ


def test_the_live_models_figures_are_paired_with_the_candidates():
    config = make_config({"max_worsening_vs_live": 0.05})
    frame, y, fair = scored(*FAIR)
    _, _, unfair = scored(*UNFAIR)

    worse = audit(frame, y, unfair, config, live_p=fair)
    same = audit(frame, y, fair, config, live_p=fair)

    change = worse["attributes"]["sex"]["candidate_minus_live"]["equalized_odds_difference"]
    assert change["value"] == pytest.approx(0.17) and change["ci"][0] > 0.1
    assert worse["attributes"]["sex"]["live"]["equalized_odds_difference"]["value"] == pytest.approx(0.0)
    assert same["attributes"]["sex"]["candidate_minus_live"]["equalized_odds_difference"] == {
        "value": 0.0,
        "ci": [0.0, 0.0],
    }
    (failed,) = fairness_checks(worse, config)
    (passed,) = fairness_checks(same, config)
    assert failed["name"] == "equalized_odds_worsening_vs_live" and not failed["success"]
    assert "vs live 0.000, change 0.170" in failed["detail"]
    assert passed["success"]
    assert fairness_checks(audit(frame, y, unfair, config), config) == []  # no live model: nothing to compare


def test_intersections_produce_combined_groups():
    config = make_config({"intersections": [["sex", "race"]]}, protected=["sex", "race"])
    frame, y, p = scored(*FAIR)
    frame["race"] = np.where(frame.index % 4 == 0, "Black", "White")

    report = audit(frame, y, p, config)

    assert list(report["attributes"]) == ["sex", "race", "sex x race"]
    combined = report["attributes"]["sex x race"]
    assert combined["columns"] == ["sex", "race"]
    sizes = {group: entry["size"] for group, entry in combined["groups"].items()}
    assert sizes == {
        "sex=Female, race=Black": 1000,
        "sex=Female, race=White": 3000,
        "sex=Male, race=Black": 1000,
        "sex=Male, race=White": 3000,
    }


def test_severity_and_per_attribute_limits_come_from_config():
    fairness = {
        "intersections": [["sex", "race"]],
        "max_equalized_odds_difference": 0.10,
        "attributes": {
            "race": {"max_equalized_odds_difference": None},
            "sex x race": {"min_demographic_parity_ratio": 0.5},
        },
        "severities": {"equalized_odds_difference": "warn"},
    }
    config = make_config(fairness, protected=["sex", "race"])
    frame, y, p = scored(*UNFAIR)
    frame["race"] = np.where(frame.index % 2 == 0, "Black", "White")

    checks = fairness_checks(audit(frame, y, p, config), config)

    assert [(c["attribute"], c["name"]) for c in checks] == [
        ("sex", "equalized_odds_difference"),
        ("sex x race", "equalized_odds_difference"),  # the default limit, kept beside the override
        ("sex x race", "demographic_parity_ratio"),
    ]
    assert check(checks, "equalized_odds_difference")["severity"] == "warn"
    assert check(checks, "demographic_parity_ratio", "sex x race")["severity"] == "block"
    assert set(LIMITS) == set(FAIRNESS_CHECKS)


@pytest.mark.parametrize(
    ("fairness", "message"),
    [
        ({"intersections": [["sex", "workclass"]]}, "non-protected attributes ['workclass']"),
        ({"intersections": [["sex"]]}, "two or more distinct attributes"),
        ({"attributes": {"gender": {"max_worsening_vs_live": 0.1}}}, "thresholds.fairness.attributes"),
        ({"severity": "stop"}, "thresholds.fairness.severity"),
        ({"max_equalized_odds_difference": 1.5}, "thresholds.fairness.max_equalized_odds_difference"),
    ],
)
def test_fairness_config_errors_name_the_key(tmp_path, fairness, message):
    with pytest.raises(ConfigError) as excinfo:
        load_config(write_config(tmp_path, {"thresholds": {"fairness": fairness}}))
    assert message in str(excinfo.value)


def test_a_config_without_a_fairness_block_reports_only(tmp_path):
    raw = yaml.safe_load(ADULT_CONFIG.read_text())
    del raw["thresholds"]["fairness"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))

    fairness = load_config(path).thresholds.fairness

    assert fairness.min_group_size == 50 and fairness.intersections == [] and fairness.severity == "block"
    assert all(value is None for value in fairness.limits("sex").model_dump().values())


def test_real_adult_rows_give_groups_for_sex_race_and_age_bins(adult_frame):
    config = load_config(ADULT_CONFIG)
    rows = adult_frame.sample(6000, random_state=0).reset_index(drop=True)
    numeric = rows[["age", "education_num", "hours_per_week", "capital_gain"]].astype(float).to_numpy()
    y = (rows["income"] == config.data_schema.label.positive).to_numpy(dtype=int)
    train = np.arange(len(rows)) < 3000
    model = LogisticRegression(max_iter=1000).fit(np.log1p(numeric[train]), y[train])
    test = rows[~train].reset_index(drop=True)
    p = model.predict_proba(np.log1p(numeric[~train]))[:, 1]

    report = audit(test, y[~train], p, config)

    min_size = config.thresholds.fairness.min_group_size
    groups = {name: set(entry["groups"]) for name, entry in report["attributes"].items()}
    assert groups["sex"] == {"sex=Female", "sex=Male"}
    assert groups["age"] == {"age=<30", "age=30-45", "age=45-60", "age=>=60"}
    assert {"race=White", "race=Black", "race=Other"} <= groups["race"]
    assert "sex x race" in groups
    for entry in report["attributes"].values():
        assert sum(g["size"] for g in entry["groups"].values()) == len(test)
        assert set(entry["too_small"]) == {n for n, g in entry["groups"].items() if g["size"] < min_size}
    assert "race=Other" in report["attributes"]["race"]["too_small"]  # ~0.8% of 3,000 rows
    sex = report["attributes"]["sex"]["candidate"]
    assert 0 < sex["demographic_parity_difference"]["value"] < 1  # men are flagged more often
    checks = fairness_checks(report, config)  # adult.yaml: limits on sex, race and age, none on sex x race
    assert {(c["attribute"], c["name"]) for c in checks} == {
        (attribute, "equalized_odds_difference") for attribute in ("sex", "race", "age")
    }
    json.dumps(report, allow_nan=False)


def test_bootstrap_equals_per_resample_scikit_learn_on_the_same_draws():
    rng = np.random.default_rng(12)
    n = 900
    codes = rng.integers(0, 3, n)
    y = (rng.random(n) < 0.2 + 0.2 * codes).astype(int)
    p = np.round(np.clip(0.4 * y + rng.normal(0.3, 0.2, n), 0, 1), 1)  # one decimal: heavy ties
    idx = np.random.default_rng(5).integers(0, n, (4, n))  # the audit's draws for seed 5

    samples = bootstrap(y, {"candidate": p}, {"g": codes}, 0.5, 4, seed=5, block_cells=3 * n)["candidate", "g"]

    for r, rows in enumerate(idx):
        for g in range(3):
            yy, pp = y[rows][codes[rows] == g], p[rows][codes[rows] == g]
            pred = (pp >= 0.5).astype(int)
            assert samples["selection_rate"][r, g] == pytest.approx(pred.mean(), abs=1e-12)
            assert samples["true_positive_rate"][r, g] == pytest.approx(pred[yy == 1].mean(), abs=1e-12)
            assert samples["false_positive_rate"][r, g] == pytest.approx(pred[yy == 0].mean(), abs=1e-12)
            assert samples["precision"][r, g] == pytest.approx(precision_score(yy, pred), abs=1e-12)
            assert samples["roc_auc"][r, g] == pytest.approx(roc_auc_score(yy, pp), abs=1e-12)
