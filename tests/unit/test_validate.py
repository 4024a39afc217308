"""Validation with real Great Expectations: judged per partition and over the window, with severities."""

from __future__ import annotations

import json
import re
from datetime import date

import numpy as np
import pytest
import yaml
from conftest import ADULT_CONFIG, write_config

from pipelines.core.config import load_config
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName, Status
from pipelines.core.outputs import SOURCE_DS, IngestOutput, ValidationOutput
from pipelines.data import validate
from pipelines.data.demo import write_partitions
from pipelines.data.ingest import ingest_window
from pipelines.data.validate import (
    ExpectationsFileError,
    ValidationFailed,
    load_rules,
    schema_rules,
    validate_frame,
    validate_snapshot,
)


@pytest.fixture
def snapshot(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03")
    return ctx, ingest_window(ctx)


@pytest.fixture(scope="module")
def window(tmp_path_factory, adult_frame):
    """A 14-day Adult window (~11,200 rows) as ingest reads it, and its config without an expectations file."""
    folder = tmp_path_factory.mktemp("window")
    path = write_config(folder, {"data": {"window_days": 14}, "expectations": None})
    config = load_config(path)
    write_partitions(adult_frame, config, date(2026, 1, 1), rows_per_day=800, days=14)
    ctx = RunContext.create(config, "2026-01-14")
    return config, IngestOutput(ingest_window(ctx)).read_snapshot()


def day(frame, ds: str):
    """The index of ``ds``'s rows in ``frame``."""
    return frame.index[frame[SOURCE_DS] == ds]


def test_rules_are_generated_from_the_schema():
    config = load_config(ADULT_CONFIG)
    schema = config.data_schema
    by_type: dict[str, list] = {}
    for r in schema_rules(config):
        by_type.setdefault(r.expectation, []).append(r.column)
    assert sorted(by_type["expect_column_values_to_be_in_type_list"]) == sorted(f.name for f in schema.features)
    assert sorted(by_type["expect_column_values_to_be_between"]) == sorted(schema.numeric)
    assert sorted(by_type["expect_column_values_to_be_in_set"]) == sorted([*schema.categorical, "income"])
    assert sorted(by_type["expect_column_values_to_not_be_null"]) == sorted(schema.columns)
    nulls = {r.column: r for r in schema_rules(config) if r.expectation == "expect_column_values_to_not_be_null"}
    assert (nulls["workclass"].window, nulls["workclass"].partition) == (0.1, 0.2), "a day tolerates twice the window"
    assert nulls["age"].window == 0.0
    assert nulls["workclass"].build().mostly == pytest.approx(0.9)
    assert by_type["expect_table_row_count_to_be_between"] == [None]


def test_clean_adult_snapshot_passes_and_writes_the_summary_and_data_docs(snapshot):
    ctx, snapshot_uri = snapshot
    uri = validate_snapshot(ctx, snapshot_uri)
    result = json.loads((ValidationOutput(ctx.stage_dir(StageName.VALIDATE)).result_path).read_text())
    assert uri == str(ctx.stage_dir(StageName.VALIDATE))
    assert result["success"] is True and result["blocked"] == []
    assert result["evaluated"] == len(load_rules(ctx.config))
    assert result["partitions"] == {
        ds: {"rows": 800, "failed": 0, "warnings": 0} for ds in ("2026-01-01", "2026-01-02", "2026-01-03")
    }
    workclass = next(
        e for e in result["expectations"] if e["column"] == "workclass" and "not_be_null" in e["expectation"]
    )
    assert workclass["window"]["rows"] == 2400 and 0 < workclass["window"]["unexpected"] < 240
    assert set(workclass["partitions"]) == {"2026-01-01", "2026-01-02", "2026-01-03"}
    assert all(p["success"] for p in workclass["partitions"].values())
    index = ValidationOutput(ctx.stage_dir(StageName.VALIDATE)).data_docs / "index.html"
    assert index.exists() and "adult-income" in index.read_text()


def test_broken_snapshot_is_blocked_naming_column_partition_counts_and_examples(snapshot):
    ctx, snapshot_uri = snapshot
    df = IngestOutput(snapshot_uri).read_snapshot()
    df.loc[:9, "age"] = 140.0  # out of the declared 17..90, all on 2026-01-01
    df.loc[10:19, "sex"] = "Martian"  # not in the value set
    df.loc[: len(df) // 2, "workclass"] = np.nan  # far above max_missing 0.1
    df.to_parquet(IngestOutput(snapshot_uri).snapshot, index=False)

    with pytest.raises(ValidationFailed) as failure:
        validate_snapshot(ctx, snapshot_uri)

    message = str(failure.value)
    assert (
        "ds=2026-01-01: 10 of 800 rows (1.2%) have age outside [17.0, 90.0] (tolerance 1.0% per partition), "
        "e.g. ['140.0'" in message
    )
    assert "window: 10 of 2,400 rows (0.42%) have age outside [17.0, 90.0] (tolerance 0.1%)" in message
    assert "ds=2026-01-01: 10 of 800 rows (1.2%) have sex outside the value set" in message and "Martian" in message
    assert "ds=2026-01-01: 800 of 800 rows (100.0%) have workclass empty (tolerance 20.0% per partition)" in message
    # Each check's first line says where its limit is set; an empty cell has no example worth showing.
    assert "(tolerance 0.1%), e.g. ['140.0'" in message
    assert "-- the range is min/max of age in the schema, or thresholds.validation.values" in message
    assert "-- the value set is values of sex in the schema" in message
    assert (
        "have workclass empty (tolerance 10.0%) -- to accept empty cells, raise max_missing of workclass in the "
        "schema\n" in message
    )
    assert "ds=2026-01-03" not in message and "education" not in message
    # The evidence is kept for the operator even though the run is blocked.
    result = json.loads((ValidationOutput(ctx.stage_dir(StageName.VALIDATE)).result_path).read_text())
    assert result["partitions"]["2026-01-01"]["failed"] == 3 and result["partitions"]["2026-01-03"]["failed"] == 0
    assert (ValidationOutput(ctx.stage_dir(StageName.VALIDATE)).data_docs / "index.html").exists()
    assert ValidationOutput(ctx.stage_dir(StageName.VALIDATE)).metadata()["status"] == Status.FAILED


def test_too_few_rows_fail_the_table_expectation(snapshot):
    ctx, snapshot_uri = snapshot
    IngestOutput(snapshot_uri).read_snapshot().head(100).to_parquet(IngestOutput(snapshot_uri).snapshot, index=False)

    expected = (
        r"table: expect_table_row_count_to_be_between failed .*observed 100 -- thresholds.validation.min_rows sets it\n"
    )
    with pytest.raises(ValidationFailed, match=expected):
        validate_snapshot(ctx, snapshot_uri)


def test_one_bad_day_is_judged_on_its_own_rows_not_diluted_by_the_window(window, tmp_path):
    config, frame = window
    frame = frame.copy()
    bad = day(frame, "2026-01-10")
    frame.loc[bad[:400], "workclass"] = np.nan  # 50% of one day, ~7% of the window: under max_missing 10%

    summary = validate_frame(frame, config, tmp_path / "docs")

    assert summary["success"] is False
    nulls = [m for m in summary["blocked"] if "workclass empty" in m]
    assert len(nulls) == 1 and nulls[0].startswith("ds=2026-01-10: ")
    assert "of 800 rows (5" in nulls[0], "counts and shares are about the partition, not the window"
    assert summary["partitions"]["2026-01-10"]["failed"] == 1


def test_a_label_value_outside_its_set_blocks_and_says_where_the_set_is_declared(window, tmp_path):
    config, frame = window
    frame = frame.copy()
    frame.loc[day(frame, "2026-01-10")[:30], "income"] = ">50K."  # as Adult's test file spells it

    summary = validate_frame(frame, config, tmp_path / "docs")

    assert (
        "window: 30 of 11,200 rows (0.27%) have income outside the value set (tolerance 0.0%), e.g. ['>50K.'"
        in summary["blocked"][0]
    )
    assert summary["blocked"][0].endswith("-- the label's value set is schema.label.values (a new class needs a "
                                          "model that knows it)")  # fmt: skip


def test_a_day_of_unseen_categories_is_reported_with_the_days_share(window, tmp_path):
    config, frame = window
    frame = frame.copy()
    frame.loc[day(frame, "2026-01-10")[:200], "workclass"] = "Gig-economy"  # 25% of the day

    summary = validate_frame(frame, config, tmp_path / "docs")

    assert (
        "ds=2026-01-10: 200 of 800 rows (25.0%) have workclass outside the value set "
        "(tolerance 1.0% per partition), e.g. ['Gig-economy'" in "\n".join(summary["blocked"])
    )


def test_a_few_odd_values_pass_within_tolerance_but_are_recorded_as_warnings(window, tmp_path):
    config, frame = window
    frame = frame.copy()
    frame.loc[day(frame, "2026-01-05")[:2], "hours_per_week"] = 120.0  # two values past max 99

    summary = validate_frame(frame, config, tmp_path / "docs")

    assert summary["success"] is True
    assert any(
        w.startswith("window: 2 of 11,200 rows (0.02%) have hours_per_week outside [1.0, 99.0], within tolerance 0.1%")
        and "ds=2026-01-05: 2" in w
        for w in summary["warnings"]
    ), summary["warnings"]


def write_expectations(config_path, entries):
    path = config_path.parent / "expectations.yaml"
    path.write_text(yaml.safe_dump({"expectations": entries}))
    raw = yaml.safe_load(config_path.read_text())
    raw["expectations"] = str(path)
    config_path.write_text(yaml.safe_dump(raw))
    return load_config(config_path)


def test_the_expectations_file_adds_relaxes_tightens_warns_and_turns_off(window, tmp_path):
    _, frame = window
    frame = frame.copy()
    frame.loc[day(frame, "2026-01-05")[:30], "age"] = 95.0  # 3.8% of one day: fails the default 1%
    frame.loc[day(frame, "2026-01-06")[:5], "sex"] = "X"  # 0.6% of a day, 0.04% of the window: tolerated
    config = write_expectations(
        write_config(tmp_path, {"data": {"window_days": 14}}),
        [
            {
                "expectation": "expect_column_values_to_be_between",
                "column": "age",
                "mostly": 0.99,
                "partition_mostly": 0.95,
            },
            {"expectation": "expect_column_values_to_be_in_set", "column": "sex", "mostly": 1.0},
            {
                "expectation": "expect_column_mean_to_be_between",
                "column": "hours_per_week",
                "kwargs": {"min_value": 50, "max_value": 60},
                "severity": "warn",
            },
            {"expectation": "expect_column_values_to_be_in_type_list", "column": "race", "enabled": False},
        ],
    )

    summary = validate_frame(frame, config, tmp_path / "docs")

    assert not any("age" in m for m in summary["blocked"]), "relaxed: 3.8% of a day is within partition_mostly 0.95"
    assert summary["blocked"] == [
        "window: 5 of 11,200 rows (0.04%) have sex outside the value set (tolerance 0.0%), "
        "e.g. ['X', 'X', 'X', 'X', 'X'] -- entry 2 of the expectations file "
        f"{config.expectations.name} sets this check",
        "ds=2026-01-06: 5 of 800 rows (0.6%) have sex outside the value set (tolerance 0.0% per partition), "
        "e.g. ['X', 'X', 'X', 'X', 'X']",
    ]
    assert (
        "hours_per_week: expect_column_mean_to_be_between failed (max_value=60, min_value=50): observed 40.49 -- "
        f"entry 3 of the expectations file {config.expectations.name} sets this check" in summary["warnings"]
    ), summary["warnings"]
    assert any(w.startswith("window: 30 of 11,200 rows (0.27%) have age outside") for w in summary["warnings"])
    checked = {(e["expectation"], e["column"]) for e in summary["expectations"]}
    assert ("expect_column_values_to_be_in_type_list", "race") not in checked
    assert ("expect_column_values_to_be_in_type_list", "sex") in checked


@pytest.mark.parametrize(
    ("entry", "error"),
    [
        (
            {"expectation": "expect_column_values_to_be_purple", "column": "age"},
            "unknown Great Expectations expectation",
        ),
        (
            {"expectation": "expect_column_values_to_not_be_null", "column": "agee"},
            "column 'agee' is not in the config",
        ),
        (
            {"expectation": "expect_column_values_to_not_be_null", "column": "age", "severity": "fatal"},
            "severity must be",
        ),
        (
            {"expectation": "expect_column_values_to_not_be_null", "column": "age", "mosty": 0.9},
            r"unknown key\(s\) \['mosty'\]",
        ),
    ],
)
def test_a_bad_expectations_entry_is_named_with_file_and_entry(tmp_path, entry, error):
    config = write_expectations(write_config(tmp_path), [entry])

    with pytest.raises(ExpectationsFileError, match=rf"expectations\.yaml, entry 1: .*{error}"):
        load_rules(config)


def test_the_shipped_adult_expectations_file_refines_the_generated_suite():
    config = load_config(ADULT_CONFIG)
    rules = {r.key: r for r in load_rules(config)}

    gain = rules[("expect_column_values_to_be_between", "capital_gain")]
    assert (gain.window, gain.partition) == (pytest.approx(0.001), pytest.approx(0.02))
    assert gain.kwargs == {"min_value": 0.0, "max_value": 99999.0}
    assert rules[("expect_column_mean_to_be_between", "hours_per_week")].severity == "warn"


def test_conflicting_labels_above_the_threshold_block(window, tmp_path):
    config, frame = window
    frame = frame.copy()
    twins = day(frame, "2026-01-03")[:300]
    frame.loc[twins, [f.name for f in config.data_schema.features]] = frame.loc[
        twins[0], [f.name for f in config.data_schema.features]
    ].to_numpy()
    frame.loc[twins[:150], "income"], frame.loc[twins[150:], "income"] = "<=50K", ">50K"
    path = write_config(
        tmp_path,
        {
            "data": {"window_days": 14},
            "expectations": None,
            "thresholds": {"validation": {"max_label_conflicts": 0.01}},
        },
    )

    summary = validate_frame(frame, load_config(path), tmp_path / "docs")

    assert summary["success"] is False
    assert any("conflicting labels" in m and "(limit 1%)" in m for m in summary["blocked"]), summary["blocked"]
    assert summary["labels"]["conflicts"]["rows_in_conflict"] >= 300


def test_a_features_partition_null_tolerance_can_be_set_apart_from_the_windows(tmp_path):
    raw = yaml.safe_load(ADULT_CONFIG.read_text())
    for f in raw["schema"]["features"]:
        if f["name"] == "workclass":
            f["max_missing_partition"] = 0.12
    path = write_config(tmp_path, {"schema": raw["schema"]})

    nulls = {r.column: r for r in schema_rules(load_config(path)) if r.expectation.endswith("not_be_null")}

    assert (nulls["workclass"].window, nulls["workclass"].partition) == (0.1, 0.12)
    assert (nulls["occupation"].window, nulls["occupation"].partition) == (0.1, 0.2)


def batched_config(folder, median_min: float):
    """The 14-day config with exact aggregates (mean, max, row count) and one only a sample can judge (median)."""
    return write_expectations(
        write_config(folder, {"data": {"window_days": 14}, "thresholds": {"validation": {"max_label_conflicts": 0.5}}}),
        [
            {
                "expectation": "expect_column_mean_to_be_between",
                "column": "hours_per_week",
                "kwargs": {"min_value": 50, "max_value": 60},
                "severity": "warn",
            },
            {"expectation": "expect_column_max_to_be_between", "column": "age", "kwargs": {"max_value": 89}},
            {"expectation": "expect_column_median_to_be_between", "column": "age", "kwargs": {"min_value": median_min}},
        ],
    )


@pytest.fixture
def batched_window(window):
    """The 14-day window with a bad day late in it, odd values, and twins with split labels on far-apart days."""
    config, frame = window
    frame = frame.copy()
    frame.loc[day(frame, "2026-01-13")[:300], "workclass"] = np.nan  # 37.5% of a late day
    frame.loc[day(frame, "2026-01-02")[:2], "hours_per_week"] = 120.0  # within the window's tolerance
    features = [f.name for f in config.data_schema.features]
    twins = [*day(frame, "2026-01-01")[:3], *day(frame, "2026-01-14")[:3]]
    frame.loc[twins, features] = frame.loc[twins[0], features].to_numpy()
    frame.loc[twins, "income"] = ["<=50K", ">50K", "<=50K", ">50K", "<=50K", ">50K"]
    return frame


def test_batches_of_partitions_give_the_one_batch_summary_and_flag_what_a_sample_judged(
    batched_window, tmp_path, monkeypatch
):
    frame, config = batched_window, batched_config(tmp_path, median_min=1)
    one = validate_frame(frame, config, tmp_path / "one")
    monkeypatch.setattr(validate, "BATCH_ROWS", 2000)  # two 800-row days a batch: 7 batches
    assert len(validate.Batches.of_frame(frame, validate.BATCH_ROWS)) == 7
    many = validate_frame(frame, config, tmp_path / "many")

    median = ("expect_column_median_to_be_between", "age")
    for single, batched in zip(one["expectations"], many["expectations"], strict=True):
        if (single["expectation"], single["column"]) == median:
            assert "sample" not in single and batched["sample"] == {"rows": 2000, "of": 11_200}
            assert batched["success"] is True
        else:
            assert batched == single
    assert (many["blocked"], many["warnings"], many["partitions"]) == (
        one["blocked"],
        one["warnings"],
        one["partitions"],
    )
    assert many["labels"] == one["labels"]
    assert many["success"] is one["success"] is False
    assert one["partitions"]["2026-01-13"]["failed"] == 1
    assert any(
        re.match(r"ds=2026-01-13: 3\d\d of 800 rows \(\d\d\.\d%\) have workclass empty", m) for m in many["blocked"]
    )
    assert "hours_per_week: expect_column_mean_to_be_between failed (max_value=60, min_value=50): observed 40.5" in (
        "\n".join(many["warnings"])
    )
    assert "age: expect_column_max_to_be_between failed (max_value=89): observed 90" in "\n".join(many["blocked"])
    assert many["labels"]["conflicts"]["rows_in_conflict"] >= 6
    twins = many["labels"]["conflicts"]["examples"][0]  # the largest even split
    assert twins["labels"] == {"<=50K": 3, ">50K": 3}
    assert [r["ds"] for r in twins["rows"]] == ["2026-01-01"] * 3 + ["2026-01-14"] * 2
    assert (tmp_path / "many" / "index.html").exists()


def test_a_sampled_aggregate_that_fails_says_it_was_judged_on_a_sample(batched_window, tmp_path, monkeypatch):
    config = batched_config(tmp_path, median_min=60)  # the median age is below 60
    monkeypatch.setattr(validate, "BATCH_ROWS", 3000)

    summary = validate_frame(batched_window, config, tmp_path / "docs")

    (line,) = [m for m in summary["blocked"] if "median" in m]
    assert line.startswith("age: expect_column_median_to_be_between failed (min_value=60): observed")
    assert line.endswith("(judged on a sample of 3,000 of 11,200 rows)")


def test_a_bad_partition_in_a_later_batch_of_row_groups_blocks_naming_it(snapshot, monkeypatch):
    ctx, snapshot_uri = snapshot
    df = IngestOutput(snapshot_uri).read_snapshot()
    df.loc[df.index[df[SOURCE_DS] == "2026-01-03"][:40], "sex"] = "Martian"
    df.to_parquet(IngestOutput(snapshot_uri).snapshot, index=False, row_group_size=800)  # a row group per day
    monkeypatch.setattr(validate, "BATCH_ROWS", 800)
    assert validate.Batches.of_snapshot(IngestOutput(snapshot_uri), 800).groups == [[0], [1], [2]]

    with pytest.raises(ValidationFailed) as failure:
        validate_snapshot(ctx, snapshot_uri)

    assert "ds=2026-01-03: 40 of 800 rows (5.0%) have sex outside the value set" in str(failure.value)
    assert "2026-01-01" not in str(failure.value)
    result = ValidationOutput(ctx.stage_dir(StageName.VALIDATE)).result()
    assert result["partitions"] == {
        "2026-01-01": {"rows": 800, "failed": 0, "warnings": 0},
        "2026-01-02": {"rows": 800, "failed": 0, "warnings": 0},
        "2026-01-03": {"rows": 800, "failed": 1, "warnings": 0},
    }
    table = next(e for e in result["expectations"] if e["expectation"] == "expect_table_row_count_to_be_between")
    assert table["window"] == {"success": True, "observed": "2400"}
    assert (ValidationOutput(ctx.stage_dir(StageName.VALIDATE)).data_docs / "index.html").exists()


@pytest.mark.parametrize(
    ("rows", "budget", "groups"), [([3, 3, 3], 6, [[0, 1], [2]]), ([9, 2, 2], 4, [[0], [1, 2]]), ([], 5, [[]])]
)
def test_partitions_are_grouped_into_batches_up_to_the_row_budget(rows, budget, groups):
    assert validate.group_units(rows, budget) == groups


@pytest.mark.parametrize(
    ("label", "positive_rows", "blocked"),
    [
        # Adult's test file writes ">50K." where its train file writes ">50K"
        ({"name": "income", "positive": ">50K.", "values": None}, None, "the positive value '>50K.' occurs in no row"),
        ({"name": "income", "positive": ">50K", "values": None}, "all", "every row carries the positive value '>50K'"),
        (
            {"name": "income", "positive": None, "values": ["<=50K", ">50K", "unknown"]},
            "none",
            "the class(es) ['>50K', 'unknown'] of schema.label.values occur in no row",
        ),
        (
            {"name": "income", "positive": None, "values": ["<=50K", ">50K", "unknown"]},
            None,
            "the class(es) ['unknown'] of schema.label.values occur in no row",
        ),
        ({"name": "income", "positive": ">50K", "values": None}, None, None),
    ],
    ids=["misspelt-positive", "no-negative", "one-class", "a-class-absent", "both"],
)
def test_a_window_without_two_label_values_to_learn_from_is_blocked(window, tmp_path, label, positive_rows, blocked):
    config, frame = window
    frame = frame.copy()
    if positive_rows:
        frame["income"] = ">50K" if positive_rows == "all" else "<=50K"
    path = write_config(tmp_path, {"data": {"window_days": 14}, "expectations": None, "schema": {"label": label}})

    summary = validate_frame(frame, load_config(path), tmp_path / "docs")

    check = summary["labels"]["checks"][0]
    assert check["name"] == "label_classes" and check["success"] is (blocked is None)
    counts = frame["income"].value_counts()
    assert f"values over {len(frame):,} rows: '{counts.index[0]}' ({counts.iloc[0]:,})" in check["message"]
    if blocked:
        assert summary["success"] is False and any(blocked in m for m in summary["blocked"]), summary["blocked"]
    else:
        assert not any("label 'income'" in m for m in summary["blocked"])
