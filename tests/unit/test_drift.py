"""Drift: tests chosen by kind and size, the correction across features, calibrated thresholds, overrides,
the dataset verdict, the HTML report, and the check on real partitions against a live model's reference."""

from __future__ import annotations

import logging
import re
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from conftest import ADULT_CONFIG, write_config
from pydantic import ValidationError

from pipelines.core.artifacts import read_metadata
from pipelines.core.config import DriftThresholds, Feature, Label, Schema, load_config
from pipelines.core.context import RunContext
from pipelines.core.contracts import PipelineError
from pipelines.core.deployment_state import DeploymentState, Slot, SlotRecord, state_path, write_state
from pipelines.core.outputs import SOURCE_DS, DriftOutput, IngestOutput
from pipelines.core.stats import adjust_p_values
from pipelines.data.demo import DriftSpec, write_partitions
from pipelines.data.drift import check_drift, compare, psi, read_history
from pipelines.data.drift_report import render_html
from pipelines.data.ingest import ingest_window

CONFIG = load_config(ADULT_CONFIG)
SCHEMA = CONFIG.data_schema
THRESHOLDS = CONFIG.thresholds.drift
FEATURES = [f.name for f in SCHEMA.features]
SMALL, LARGE = 500, 4000  # below and above thresholds.drift.large_sample (1000)
EXPECTED_TEST = {
    (SMALL, "numeric"): "ks",
    (SMALL, "categorical"): "chi2",
    (LARGE, "numeric"): "wasserstein",
    (LARGE, "categorical"): "jensen_shannon",
}


def thresholds(**changes) -> DriftThresholds:
    """The config's drift thresholds with ``changes``, validated as the config would be."""
    return DriftThresholds.model_validate({**THRESHOLDS.model_dump(), **changes})


@pytest.fixture(scope="module")
def adult(adult_frame):
    """Adult rows shuffled, typed as the ingest types them."""
    frame = adult_frame.copy()
    for name in SCHEMA.numeric:
        frame[name] = frame[name].astype(float)
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)


@pytest.fixture(scope="module")
def halves(adult):
    """Two disjoint random samples of 4,000 Adult rows."""
    return adult.iloc[:LARGE].reset_index(drop=True), adult.iloc[LARGE : 2 * LARGE].reset_index(drop=True)


def sized(halves, n):
    return halves[0].head(n), halves[1].head(n)


def test_psi_of_identical_proportions_is_zero_and_grows_with_the_shift():
    ref = np.array([0.25, 0.25, 0.25, 0.25])

    assert psi(ref, ref) == 0.0
    assert 0 < psi(ref, np.array([0.3, 0.25, 0.25, 0.2])) < psi(ref, np.array([0.7, 0.1, 0.1, 0.1]))
    # An empty bin on one side is clipped, not a division by zero.
    assert np.isfinite(psi(ref, np.array([0.5, 0.5, 0.0, 0.0])))


def test_holm_and_benjamini_hochberg_adjust_as_defined():
    p = [0.01, 0.04, 0.03, 0.005]

    # Holm: sorted p times (m, m-1, ...), made monotone: 0.02, 0.03, 0.06, max(0.06, 0.04).
    assert adjust_p_values(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted p times m / rank, made monotone from the top: 0.02, 0.02, 0.04, 0.04.
    assert adjust_p_values(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_p_values(p, "none") == p
    assert adjust_p_values([0.9, 0.8], "holm") == [1.0, 1.0]


@pytest.mark.parametrize("n", [SMALL, LARGE])
def test_two_samples_of_the_same_rows_are_none_with_the_test_for_their_size(halves, n):
    report = compare(*sized(halves, n), SCHEMA, THRESHOLDS)

    assert report["verdict"] == "none"
    assert report["drifted_features"] == [] and report["share"] == 0.0
    assert list(report["features"]) == FEATURES
    for name, entry in report["features"].items():
        assert entry["test"] == EXPECTED_TEST[n, entry["kind"]], name
        assert entry["drifted"] is False and entry["verdict"] == "none"
        assert entry["reference_rows"] == entry["current_rows"] == n
        assert entry["psi"] < THRESHOLDS.psi
        if n == SMALL:
            assert entry["p_adjusted"] >= entry["p_value"] > 0
        else:
            assert entry["p_value"] is None and entry["statistic"] < entry["threshold"]


@pytest.mark.parametrize("n", [SMALL, LARGE])
def test_age_five_years_older_is_detected_on_age_only(halves, n):
    reference, current = sized(halves, n)

    report = compare(reference, current.assign(age=current["age"] + 5), SCHEMA, THRESHOLDS)

    age = report["features"]["age"]
    assert report["drifted_features"] == ["age"]
    assert age["test"] == ("ks" if n == SMALL else "wasserstein")
    assert age["drifted"] is True and age["verdict"] == "drift"
    if n == SMALL:
        assert age["p_adjusted"] <= THRESHOLDS.alpha
    else:
        assert age["statistic"] > age["threshold"] >= THRESHOLDS.wasserstein
    # One feature of 13 (7.7%) is above warn_share (5%) and below drift_share (30%): a warning.
    assert report["verdict"] == "warn" and report["share"] == pytest.approx(1 / 13, abs=1e-6)
    assert "age" in report["summary"] and "1 of 13" in report["summary"]


@pytest.mark.parametrize("n", [SMALL, LARGE])
def test_thirty_percent_of_workclass_turned_into_another_category_is_detected(halves, n):
    reference, current = sized(halves, n)
    changed = current.copy()
    changed.loc[np.random.default_rng(0).random(n) < 0.3, "workclass"] = "Self-emp-inc"

    report = compare(reference, changed, SCHEMA, THRESHOLDS)

    assert report["drifted_features"] == ["workclass"]
    assert report["features"]["workclass"]["test"] == ("chi2" if n == SMALL else "jensen_shannon")


def test_the_dataset_verdict_follows_the_share_of_drifted_features(halves):
    reference, current = halves
    two = current.assign(age=current["age"] + 5, hours_per_week=current["hours_per_week"] + 10)
    four = two.assign(education_num=two["education_num"] - 3, sex="Female")

    assert compare(reference, current, SCHEMA, THRESHOLDS)["verdict"] == "none"
    assert compare(reference, two, SCHEMA, THRESHOLDS)["verdict"] == "warn"  # 2 of 13 >= 5%
    report = compare(reference, four, SCHEMA, THRESHOLDS)  # 4 of 13 >= 30%
    assert report["verdict"] == "drift"
    assert report["drifted_features"] == ["age", "education_num", "hours_per_week", "sex"]


def test_the_correction_removes_most_false_flags_under_no_drift(adult):
    n, flags = 300, {"none": 0, "holm": 0}
    for seed in range(12):
        rows = adult.sample(2 * n, random_state=seed)
        reference, current = rows.iloc[:n], rows.iloc[n:]
        for correction in flags:
            report = compare(reference, current, SCHEMA, thresholds(correction=correction))
            flags[correction] += len(report["drifted_features"])

    # 13 tests a split at alpha 0.05: about 8 false flags in 12 splits uncorrected, Holm keeps the
    # chance of any at all near 5% a split.
    assert flags["none"] >= 5
    assert flags["holm"] <= flags["none"] / 3


def test_sampling_noise_raises_a_distance_threshold_on_a_thousand_rows(adult):
    reference, current = adult.iloc[:1000], adult.iloc[1000:2000]

    report = compare(reference, current, SCHEMA, THRESHOLDS)

    country = report["features"]["native_country"]
    # 41 categories on 1,000 rows a side: chance alone reaches a Jensen-Shannon distance of ~0.15.
    assert country["threshold_source"] == "noise" and country["threshold"] > THRESHOLDS.jensen_shannon
    assert "sampling noise" in country["threshold_reason"]
    assert report["verdict"] == "none"


def test_missing_values_are_checked_beside_the_value_tests(halves):
    reference, current = halves
    blanked = current.copy()
    blanked.loc[blanked.index[:1200], "hours_per_week"] = np.nan
    emptied = current.assign(capital_loss=np.nan)

    report = compare(reference, blanked, SCHEMA, THRESHOLDS)
    hours = report["features"]["hours_per_week"]
    assert report["drifted_features"] == ["hours_per_week"]
    assert hours["statistic"] < hours["threshold"]  # the values that are there did not move ...
    assert hours["missing"]["check"]["drifted"] is True  # ... their share did
    assert (hours["missing"]["reference"], hours["missing"]["current"]) == (0.0, 0.3)
    assert "missing share" in hours["why"]

    report = compare(reference, emptied, SCHEMA, THRESHOLDS)
    assert report["drifted_features"] == ["capital_loss"]
    assert report["features"]["capital_loss"]["statistic"] is None


def test_too_few_rows_is_insufficient_data(halves):
    reference, current = halves

    report = compare(reference, current.head(THRESHOLDS.min_rows - 1), SCHEMA, THRESHOLDS)

    assert report["verdict"] == "insufficient_data"
    assert report["drifted_features"] == []
    assert all(e["verdict"] == "insufficient_data" and e["drifted"] is False for e in report["features"].values())
    assert str(THRESHOLDS.min_rows - 1) in report["summary"]


def test_per_feature_overrides_choose_the_test_and_the_threshold(halves):
    reference, current = halves
    older = current.assign(age=current["age"] + 5)
    overrides = {"age": {"test": "wasserstein", "threshold": 0.5}, "workclass": {"test": "chi2"}}

    report = compare(reference, older, SCHEMA, thresholds(features=overrides))

    age, workclass = report["features"]["age"], report["features"]["workclass"]
    assert age["threshold"] == 0.5 and age["threshold_source"] == "override"
    assert "thresholds.drift.features.age" in age["threshold_reason"]
    assert age["drifted"] is False  # 0.39 is drift at the default 0.1, not at 0.5
    assert workclass["test"] == "chi2" and workclass["p_value"] is not None  # a p-value on 4,000 rows
    psi_age = compare(reference, older, SCHEMA, thresholds(features={"age": {"test": "psi", "threshold": 0.5}}))
    assert psi_age["features"]["age"]["test"] == "psi" and psi_age["drifted_features"] == ["age"]


def test_overrides_that_cannot_apply_are_refused(halves):
    with pytest.raises(ValidationError, match="features.age: a threshold needs its test"):
        thresholds(features={"age": {"threshold": 0.2}})
    with pytest.raises(ValidationError, match="must be below 1"):
        thresholds(features={"age": {"test": "ks", "threshold": 2}})
    with pytest.raises(PipelineError, match="thresholds.drift.features.sex.test: ks needs a numeric feature"):
        compare(*halves, SCHEMA, thresholds(features={"sex": {"test": "ks"}}))


def days_of(frame: pd.DataFrame, first: date, days: int) -> pd.DataFrame:
    """``frame``'s rows spread evenly over ``days`` days from ``first``, as partitions' rows are."""
    day = np.arange(len(frame)) * days // len(frame)
    return frame.assign(**{SOURCE_DS: [(first + timedelta(days=int(d))).isoformat() for d in day]})


@pytest.fixture(scope="module")
def calibration_case(adult):
    """A reference, one current day with age 3 years older, and 20 past days whose age moves by up to 4 years."""
    reference = days_of(adult.iloc[:8000], date(2026, 1, 2), 10)  # Jan 2-11, the 10 days before the history's
    current = days_of(adult.iloc[8000:9500].assign(age=lambda f: f["age"] + 3), date(2026, 2, 1), 1)
    offsets = np.random.default_rng(1).uniform(-4, 4, 20)
    days = [
        days_of(adult.iloc[9500 + 1500 * i : 11000 + 1500 * i], date(2026, 1, 12) + timedelta(days=i), 1)
        for i in range(20)
    ]
    history = pd.concat([d.assign(age=d["age"] + off) for d, off in zip(days, offsets, strict=True)])
    return reference, current, history


def test_history_with_large_natural_variability_raises_the_threshold(calibration_case):
    reference, current, history = calibration_case

    plain = compare(reference, current, SCHEMA, THRESHOLDS)
    calibrated = compare(reference, current, SCHEMA, THRESHOLDS, history=history)

    assert plain["drifted_features"] == ["age"]
    age = calibrated["features"]["age"]
    assert age["threshold_source"] == "calibrated"
    assert re.fullmatch(r"calibrated: mean [\d.]+ \+ 3 x sd [\d.]+ over 20 past windows", age["threshold_reason"])
    assert age["threshold"] > 2 * THRESHOLDS.wasserstein > age["statistic"] > THRESHOLDS.wasserstein
    assert calibrated["drifted_features"] == []
    assert calibrated["calibration"]["windows"] == 20 and calibrated["calibration"]["window_days"] == 1


def test_too_little_history_keeps_the_default_and_the_reference_days_are_left_out(calibration_case):
    reference, current, history = calibration_case
    # Three past days of their own, and five of the reference's (which say nothing: their rows are in it).
    short = pd.concat([history[history[SOURCE_DS] >= "2026-01-29"], reference[reference[SOURCE_DS] >= "2026-01-07"]])

    report = compare(reference, current, SCHEMA, THRESHOLDS, history=short)

    age = report["features"]["age"]
    assert age["threshold_source"] == "default"
    assert age["threshold_reason"] == "default 0.1: only 3 past windows, need 5"
    assert report["calibration"]["reference_days_left_out"] == 5
    assert report["drifted_features"] == ["age"]


def test_the_html_report_escapes_names_and_has_one_section_per_feature():
    schema = Schema(
        label=Label(name="y", positive="1"),
        features=[Feature(name="<b>size&co</b>", kind="numeric"), Feature(name='kind"x', kind="categorical")],
    )
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"<b>size&co</b>": rng.normal(size=600), 'kind"x': rng.choice(["a", "<script>"], 600)})

    html = render_html(compare(frame.iloc[:300], frame.iloc[300:], schema, THRESHOLDS))

    assert html.count('<section class="feature') == 2 and html.count("<svg") == 2
    assert "&lt;b&gt;size&amp;co&lt;/b&gt;" in html and "<b>size" not in html
    assert "kind&quot;x" in html and "&lt;script&gt;" in html
    assert "<script" not in html and "<link" not in html and "src=" not in html  # offline: nothing to fetch


@pytest.fixture
def deployed(tmp_path, adult_frame):
    """20 daily partitions of 400 Adult rows, age drifted on the last 3; a live model trained on days 1-3."""
    path = write_config(tmp_path, {"data": {"window_days": 3}})
    config = load_config(path)
    older = DriftSpec.parse("2026-01-18..2026-01-20:covariate:age")
    write_partitions(adult_frame, config, date(2026, 1, 1), rows_per_day=400, days=20, drifts=[older])
    trained_on = ingest_window(RunContext.create(path, "2026-01-03"))
    record = SlotRecord("v1", "unused", str(IngestOutput(trained_on).snapshot), "2026-01-03", "run-1")
    write_state(config, DeploymentState(live=Slot.BLUE, slots={Slot.BLUE: record, Slot.GREEN: None}))
    return path


def test_check_drift_compares_with_the_live_reference_calibrates_on_past_days_and_writes_html(deployed, caplog):
    ctx = RunContext.create(deployed, "2026-01-20")
    snapshot = ingest_window(ctx)

    with caplog.at_level(logging.INFO, logger="pipelines.data.drift"):
        uri = check_drift(ctx, snapshot)

    output = DriftOutput(uri)
    report = output.report()
    assert "age" in report["drifted_features"] and report["verdict"] in ("warn", "drift")
    assert report["reference"]["version"] == "v1"
    # 30 days of history before Jan 18 hold Jan 1-17; Jan 1-3 are the reference's: 14 days, 12 windows of 3.
    calibration = report["calibration"]
    assert len(calibration["partitions"]) == 17
    assert (calibration["reference_days_left_out"], calibration["history_days_used"]) == (3, 14)
    assert calibration["windows"] == 12
    assert any(e["threshold_source"] == "calibrated" for e in report["features"].values())
    html = output.html_path.read_text()
    assert html.count('<section class="feature') == len(FEATURES) and report["verdict"] in html
    assert read_metadata(uri)["verdict"] == report["verdict"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"drift {report['verdict']}:" in logged and "age" in logged and str(output.html_path) in logged


def test_check_drift_without_a_deployment_has_no_reference(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03")
    snapshot = ingest_window(ctx)

    uri = check_drift(ctx, snapshot)

    report = DriftOutput(uri).report()
    assert report["verdict"] == "no_reference"
    assert str(state_path(ctx.config)) in report["reason"]
    assert report["drifted_features"] == []
    assert "no_reference" in DriftOutput(uri).html_path.read_text()
    meta = read_metadata(uri)
    assert meta["verdict"] == "no_reference"
    assert meta["inputs"]["snapshot"] == {
        "uri": snapshot,
        "fingerprint": read_metadata(snapshot)["fingerprint"],
    }


def test_past_days_are_read_with_the_ingest_parser_and_broken_days_are_skipped(small_adult):
    config = load_config(small_adult)
    header, *lines = config.data.partition(date(2026, 1, 1)).read_text().splitlines()
    config.data.partition(date(2026, 1, 1)).write_text("\n".join(["\ufeff" + header, "abc" + lines[0], *lines[1:]]))
    config.data.partition(date(2026, 1, 2)).write_text(header.replace("age", "years") + "\n" + lines[0] + "\n")

    history, found = read_history(RunContext.create(config, "2026-01-06", window_days=3))

    assert found == [
        {"ds": "2026-01-01", "status": "read", "rows": 799},
        {"ds": "2026-01-02", "status": "broken", "rows": 0},
        {"ds": "2026-01-03", "status": "read", "rows": 800},
    ]
    assert sorted(history[SOURCE_DS].unique()) == ["2026-01-01", "2026-01-03"] and len(history) == 1599


def batches(frame: pd.DataFrame, rows: int):
    """``frame`` in consecutive batches of ``rows``, as the snapshot is streamed."""
    return (frame.iloc[start : start + rows] for start in range(0, len(frame), rows))


@pytest.mark.parametrize("n", [SMALL, LARGE])
def test_batches_give_the_report_of_the_whole_frames(halves, n):
    reference, current = (frame.copy() for frame in sized(halves, n))
    current.loc[n // 2 :, "workclass"] = None  # missing only from a later batch on
    current.loc[n - 3 :, "native_country"] = "Atlantis"  # a category first seen in the last batch

    whole = compare(reference, current, SCHEMA, THRESHOLDS)

    assert compare(batches(reference, 700), batches(current, 300), SCHEMA, THRESHOLDS) == whole
    assert whole["features"]["workclass"]["missing"]["current"] > 0.4


def test_batches_are_calibrated_as_the_whole_frames(calibration_case):
    reference, current, history = calibration_case

    whole = compare(reference, current, SCHEMA, THRESHOLDS, history=history)

    assert compare(batches(reference, 3000), batches(current, 400), SCHEMA, THRESHOLDS, history=history) == whole
    assert whole["calibration"]["windows"] == 20
