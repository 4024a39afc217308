"""Drift: the population stability index per feature, verdicts, and the check before any deployment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import ADULT_CONFIG

from pipelines.core.artifacts import read_metadata
from pipelines.core.config import load_config
from pipelines.core.context import RunContext
from pipelines.core.deployment_state import state_path
from pipelines.core.outputs import DriftOutput
from pipelines.data.drift import check_drift, compare, psi
from pipelines.data.ingest import ingest_window

CONFIG = load_config(ADULT_CONFIG)
SCHEMA = CONFIG.data_schema
THRESHOLDS = CONFIG.thresholds.drift


@pytest.fixture(scope="module")
def halves(adult_frame):
    """Two disjoint random samples of 4,000 Adult rows, typed as the ingest types them."""
    frame = adult_frame.copy()
    for name in SCHEMA.numeric:
        frame[name] = frame[name].astype(float)
    shuffled = frame.sample(8000, random_state=3).reset_index(drop=True)
    return shuffled.iloc[:4000].reset_index(drop=True), shuffled.iloc[4000:].reset_index(drop=True)


def test_psi_of_identical_proportions_is_zero():
    p = np.array([0.1, 0.2, 0.3, 0.4])

    assert psi(p, p) == 0.0


def test_psi_grows_with_the_shift_and_is_symmetric():
    ref = np.array([0.25, 0.25, 0.25, 0.25])
    small = np.array([0.3, 0.25, 0.25, 0.2])
    large = np.array([0.7, 0.1, 0.1, 0.1])

    assert 0 < psi(ref, small) < psi(ref, large)
    assert psi(ref, large) == pytest.approx(psi(large, ref))
    # An empty bin on one side is clipped, not a division by zero.
    assert np.isfinite(psi(ref, np.array([0.5, 0.5, 0.0, 0.0])))


def test_two_samples_of_the_same_rows_are_stable(halves):
    report = compare(*halves, SCHEMA, THRESHOLDS)

    assert report["verdict"] == "stable"
    assert report["drifted_features"] == []
    assert report["psi_threshold"] == THRESHOLDS.psi
    assert set(report["features"]) == {f.name for f in SCHEMA.features}
    for entry in report["features"].values():
        assert entry["verdict"] == "stable"
        assert 0 <= entry["psi"] < 0.05
        assert entry["reference_rows"] == entry["current_rows"] == 4000


def test_shifted_age_is_drift_on_age_only(halves):
    reference, current = halves
    shifted = current.assign(age=current["age"] + 15)

    report = compare(reference, shifted, SCHEMA, THRESHOLDS)

    assert report["verdict"] == "drift"
    assert report["drifted_features"] == ["age"]
    assert report["features"]["age"]["psi"] > THRESHOLDS.psi
    assert report["features"]["age"]["kind"] == "numeric"


def test_a_new_category_increases_psi(halves):
    reference, current = halves
    novel = current.copy()
    novel.loc[novel.index[:800], "workclass"] = "Space-agency"

    before = compare(reference, current, SCHEMA, THRESHOLDS)["features"]["workclass"]["psi"]
    after = compare(reference, novel, SCHEMA, THRESHOLDS)["features"]["workclass"]["psi"]

    assert after > before + 0.5


def test_more_missing_values_increase_psi(halves):
    reference, current = halves
    blanked = current.copy()
    blanked.loc[blanked.index[:1200], "hours_per_week"] = np.nan

    report = compare(reference, blanked, SCHEMA, THRESHOLDS)

    assert report["drifted_features"] == ["hours_per_week"]


def test_too_few_rows_is_insufficient_data(halves):
    reference, current = halves
    few = current.head(THRESHOLDS.min_rows - 1)

    report = compare(reference, few, SCHEMA, THRESHOLDS)

    assert report["verdict"] == "insufficient_data"
    assert report["drifted_features"] == []
    assert all(e["verdict"] == "insufficient_data" and e["psi"] is None for e in report["features"].values())


def test_exactly_min_rows_is_enough(halves):
    reference, current = halves

    report = compare(reference, current.head(THRESHOLDS.min_rows), SCHEMA, THRESHOLDS)

    assert report["verdict"] in ("stable", "drift")
    assert all(e["psi"] is not None for e in report["features"].values())


def test_check_drift_without_a_deployment_has_no_reference(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03")
    snapshot = ingest_window(ctx)

    uri = check_drift(ctx, snapshot)

    report = DriftOutput(uri).report()
    assert report["verdict"] == "no_reference"
    assert str(state_path(ctx.config)) in report["reason"]
    assert report["drifted_features"] == []
    meta = read_metadata(uri)
    assert meta["verdict"] == "no_reference"
    assert meta["inputs"]["snapshot"] == {
        "uri": snapshot,
        "fingerprint": read_metadata(snapshot)["fingerprint"],
    }


def test_compare_handles_all_missing_numeric_column(halves):
    reference, current = halves
    empty = current.assign(capital_loss=pd.Series(np.nan, index=current.index))

    report = compare(reference, empty, SCHEMA, THRESHOLDS)

    assert "capital_loss" in report["drifted_features"]
