"""Splits: the hash split as it always was, the stratified split per stratum, and the split report."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import ADULT_CONFIG, ingest_and_validate, write_config

from pipelines.core.artifacts import fingerprint_frame, read_metadata
from pipelines.core.config import ConfigError, Split, load_config
from pipelines.core.context import RunContext
from pipelines.core.outputs import SOURCE_DS, SOURCE_ROW, IngestOutput, TransformOutput
from pipelines.data.ingest import ingest_window
from pipelines.features import transform
from pipelines.features.splits import (
    MISSING,
    Splits,
    groups,
    in_split,
    in_stratified_split,
    in_test_split,
    split_report,
    split_rows,
    strata,
    tallied_report,
)
from pipelines.features.transform import transform_features

CONFIG = load_config(ADULT_CONFIG)


def configured(method: str = "hash", stratify_by: tuple[str, ...] = (), threshold: str = "fixed"):
    """The Adult config with another split method and decision-threshold strategy."""
    data = CONFIG.data.model_copy(update={"split": Split(method=method, stratify_by=list(stratify_by))})
    training = CONFIG.training.model_copy(
        update={"threshold": CONFIG.training.threshold.model_copy(update={"strategy": threshold})}
    )
    return CONFIG.model_copy(update={"data": data, "training": training})


def legacy_in_test_split(df: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """The hash split as transform.py had it before the splits module (kept verbatim as the reference)."""
    keys = (f"{seed}/{d}/{r}".encode() for d, r in zip(df[SOURCE_DS], df[SOURCE_ROW], strict=True))
    buckets = np.fromiter(
        (int.from_bytes(hashlib.blake2b(k, digest_size=8).digest(), "big") % 10_000 for k in keys),
        dtype=np.int64,
        count=len(df),
    )
    return buckets < round(fraction * 10_000)


def people(sizes: dict[tuple[str, str], int]) -> pd.DataFrame:
    """Rows with source columns, a label and a sex: ``sizes`` rows of each (income, sex), over two days."""
    frames = [pd.DataFrame({"income": [income] * n, "sex": [sex] * n}) for (income, sex), n in sizes.items()]
    rows = pd.concat(frames, ignore_index=True)
    rows[SOURCE_DS] = np.where(np.arange(len(rows)) % 2, "2026-01-01", "2026-01-02")
    rows[SOURCE_ROW] = np.arange(2, len(rows) + 2)
    rows["age"] = 17.0 + np.arange(len(rows)) % 60
    rows["race"] = "White"
    return rows


SIZES = {(">50K", "Male"): 333, (">50K", "Female"): 7, ("<=50K", "Male"): 50, ("<=50K", "Female"): 3}
TINY = {(">50K", "Other"): 1, ("<=50K", "Other"): 2}


def test_the_default_is_the_hash_split_row_for_row_as_before():
    rows = people({("<=50K", "Male"): 3000, (">50K", "Female"): 1000})
    config = configured()

    for fraction, seed in ((0.2, 0), (0.1, 7), (1 / 3, 12345)):
        old = legacy_in_test_split(rows, fraction, seed)
        assert (in_test_split(rows, fraction, seed) == old).all() and (
            in_split(rows, fraction, seed, config) == old
        ).all()
    splits = split_rows(rows, configured(threshold="max_f1"))
    old_test = legacy_in_test_split(rows, 0.2, 0)
    old_train = rows[~old_test].reset_index(drop=True)
    old_held = legacy_in_test_split(old_train, 0.1, 1)
    pd.testing.assert_frame_equal(splits.test, rows[old_test].reset_index(drop=True))
    pd.testing.assert_frame_equal(splits.validation, old_train[old_held].reset_index(drop=True))
    pd.testing.assert_frame_equal(splits.train, old_train[~old_held].reset_index(drop=True))
    assert CONFIG.data.split == Split(method="hash", stratify_by=[])
    assert transform.in_test_split is in_test_split  # still importable where it used to live


@pytest.mark.parametrize("fraction", [0.2, 0.6])  # at 0.6 a one-row stratum would round to test
def test_each_stratum_gets_its_share_to_the_row_and_one_row_strata_stay_in_training(fraction):
    rows = people(SIZES | TINY)
    config = configured("stratified", ["sex"])

    chosen = in_split(rows, fraction, seed=0, config=config)

    counts = rows.assign(chosen=chosen).groupby(["income", "sex"])["chosen"].agg(["sum", "size"])
    for (income, sex), (taken, n) in counts.iterrows():
        if n == 1:
            assert taken == 0, (income, sex)
        else:
            assert abs(taken - fraction * n) <= 0.5, (income, sex, taken, n)
    assert counts.loc[(">50K", "Male"), "sum"] == round(fraction * 333)


def test_the_stratified_split_depends_on_the_rows_not_their_order():
    rows = people(SIZES)
    config = configured("stratified", ["sex", "age"])
    chosen = in_split(rows, 0.2, seed=0, config=config)

    shuffled = rows.sample(frac=1.0, random_state=3)
    again = in_split(shuffled, 0.2, seed=0, config=config)

    assert (again == chosen[shuffled.index.to_numpy()]).all()
    assert (in_split(rows, 0.2, seed=0, config=config) == chosen).all()
    assert (in_split(rows, 0.2, seed=1, config=config) != chosen).any()


def test_numeric_strata_follow_the_slice_bins_and_missing_is_a_group():
    ages = pd.Series([17.0, 30.0, 44.9, 45.0, 60.0, np.nan])
    assert groups(ages, CONFIG.data_schema.feature("age")).tolist() == [
        "<30",
        "30-45",
        "30-45",
        "45-60",
        ">=60",
        MISSING,
    ]
    assert groups(pd.Series(["Male", None])).tolist() == ["Male", MISSING]
    rows = people({(">50K", "Male"): 4}).assign(age=[20.0, 25.0, 50.0, np.nan])
    assert len(set(strata(rows, configured("stratified", ["age"])))) == 3


def test_stratified_rows_are_chosen_by_stratum_not_by_the_whole_frame():
    rows = people({("<=50K", "Male"): 10})
    one_stratum = np.zeros(len(rows), dtype=np.int64)

    chosen = in_stratified_split(rows, 0.3, seed=0, strata=one_stratum)

    hashes = [
        int.from_bytes(hashlib.blake2b(f"0/{d}/{r}".encode(), digest_size=8).digest(), "big")
        for d, r in zip(rows[SOURCE_DS], rows[SOURCE_ROW], strict=True)
    ]
    assert set(np.flatnonzero(chosen)) == set(np.argsort(hashes)[:3])  # round(0.3 * 10) lowest hashes


@pytest.mark.parametrize(
    ("split", "problem"),
    [
        ({"method": "hash", "stratify_by": ["sex"]}, "stratify_by applies to method 'stratified' only"),
        ({"method": "random"}, "data.split.method"),
    ],
)
def test_a_wrong_split_config_names_the_key(tmp_path, split, problem):
    with pytest.raises(ConfigError, match=problem):
        load_config(write_config(tmp_path, {"data": {"split": split}}))


@pytest.mark.parametrize(
    ("stratify_by", "problem"), [(["salary"], "'salary' is not a feature"), (["hours_per_week"], "needs slice_bins")]
)
def test_stratifying_by_a_column_without_groups_is_refused(stratify_by, problem):
    with pytest.raises(ConfigError, match=f"data.split.stratify_by: .*{problem}"):
        split_rows(people(SIZES).assign(hours_per_week=40.0), configured("stratified", stratify_by))


def test_the_report_gives_each_splits_shares_and_the_largest_gaps():
    train = pd.DataFrame(
        {
            "income": [">50K", "<=50K", "<=50K", "<=50K", ">50K", "<=50K"],
            "sex": ["Male", "Male", "Male", "Male", "Female", "Female"],
            "race": ["White"] * 6,
            "age": [25.0, 35.0, 50.0, 70.0, np.nan, 40.0],
        }
    )
    test = pd.DataFrame(
        {
            "income": [">50K", "<=50K", "<=50K", "<=50K"],
            "sex": ["Female", "Female", "Female", "Male"],
            "race": ["White", "White", "Black", "Black"],
            "age": [20.0, 22.0, 33.0, 61.0],
        }
    )

    report = split_report(Splits(train, train.iloc[:0], test), configured())

    assert list(report["splits"]) == ["train", "test"]  # no validation split under a fixed threshold
    tr, te = report["splits"]["train"], report["splits"]["test"]
    assert (tr["rows"], tr["share"], te["rows"], te["share"]) == (6, 0.6, 4, 0.4)
    assert (tr["positive_share"], te["positive_share"]) == (0.333333, 0.25)
    assert tr["columns"]["sex"] == {"Female": 0.333333, "Male": 0.666667}
    assert te["columns"]["race"] == {"Black": 0.5, "White": 0.5}
    assert tr["columns"]["age"] == {
        "30-45": 0.333333,
        "45-60": 0.166667,
        "<30": 0.166667,
        ">=60": 0.166667,
        MISSING: 0.166667,
    }
    assert report["gaps"] == {
        "income": {"value": "<=50K", "gap": 0.083333},
        "sex": {"value": "Female", "gap": 0.416667},
        "race": {"value": "Black", "gap": 0.5},
        "age": {"value": "<30", "gap": 0.333333},
    }
    assert report["max_gap"] == {"column": "race", "value": "Black", "gap": 0.5}
    assert (report["method"], report["validation_fraction"]) == ("hash", None)


def test_the_transform_stage_writes_the_split_report(small_adult):
    raw = yaml.safe_load(small_adult.read_text())
    raw["data"]["split"] = {"method": "stratified", "stratify_by": ["sex"]}
    raw["training"]["threshold"] = {"strategy": "max_f1"}
    small_adult.write_text(yaml.safe_dump(raw))
    ctx = RunContext.create(small_adult, "2026-01-03")

    out = TransformOutput(transform_features(ctx, *ingest_and_validate(ctx)))

    report = out.split_report()
    frames = {
        "train": pd.read_parquet(out.train_raw),
        "validation": pd.read_parquet(out.validation_raw),
        "test": pd.read_parquet(out.test_raw),
    }
    assert {name: part["rows"] for name, part in report["splits"].items()} == {k: len(v) for k, v in frames.items()}
    everything = pd.concat(frames.values(), ignore_index=True)
    test_counts = frames["test"].groupby(["income", "sex"]).size()
    for stratum, n in everything.groupby(["income", "sex"]).size().items():
        assert abs(test_counts.get(stratum, 0) - 0.2 * n) <= 0.5, stratum
    for name, frame in frames.items():
        assert report["splits"][name]["positive_share"] == pytest.approx((frame["income"] == ">50K").mean(), abs=1e-6)
    summary = read_metadata(out.path)["split"]
    assert summary["method"] == "stratified" and summary["stratify_by"] == ["sex"]
    assert summary["max_gap"] == report["max_gap"] and set(report["gaps"]) == {"income", "sex", "race", "age"}


@pytest.mark.parametrize("threshold", ["fixed", "max_f1"])
def test_the_streamed_hash_split_is_the_split_of_the_whole_snapshot(small_adult, tmp_path, threshold):
    raw = yaml.safe_load(small_adult.read_text())
    raw["training"]["threshold"] = {"strategy": threshold}
    small_adult.write_text(yaml.safe_dump(raw))
    ctx = RunContext.create(small_adult, "2026-01-03")
    snapshot = IngestOutput(ingest_window(ctx))
    out = TransformOutput(tmp_path / "splits")
    out.path.mkdir()

    tallies, fingerprints = transform.write_splits(snapshot, out, ctx.config, batch_rows=700)

    whole = split_rows(snapshot.read_snapshot(), ctx.config)
    written = {"train": out.train_raw, "validation": out.validation_raw, "test": out.test_raw}
    kept = {name: frame for name, frame in whole._asdict().items() if len(frame)}
    assert set(fingerprints) == set(kept) == ({"train", "test"} if threshold == "fixed" else set(written))
    assert out.validation_raw.exists() == (threshold != "fixed")
    for name, frame in kept.items():
        pd.testing.assert_frame_equal(pd.read_parquet(written[name]), frame)
        assert fingerprints[name] == fingerprint_frame(frame)
    assert pq.ParquetFile(out.train_raw).num_row_groups == 4, "one row group per batch of the 2,400 rows"
    assert tallied_report(tallies, ctx.config) == split_report(whole, ctx.config)
