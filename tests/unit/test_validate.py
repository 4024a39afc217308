"""Validation with real Great Expectations: a suite generated from the schema that really blocks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ADULT_CONFIG

from pipelines.config import load_config
from pipelines.context import RunContext
from pipelines.ingest import SNAPSHOT, ingest, read_snapshot
from pipelines.validate import ValidationFailed, build_expectations, validate


@pytest.fixture
def snapshot(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03")
    return ctx, ingest(ctx)


def test_suite_is_generated_from_the_schema():
    config = load_config(ADULT_CONFIG)
    schema = config.data_schema
    suite = build_expectations(config)
    by_type: dict[str, list] = {}
    for e in suite:
        by_type.setdefault(e.expectation_type, []).append(getattr(e, "column", None))
    assert sorted(by_type["expect_column_values_to_be_in_type_list"]) == sorted(f.name for f in schema.features)
    assert sorted(by_type["expect_column_values_to_be_between"]) == sorted(schema.numeric)
    assert sorted(by_type["expect_column_values_to_be_in_set"]) == sorted([*schema.categorical, "income"])
    assert sorted(by_type["expect_column_values_to_not_be_null"]) == sorted(schema.columns)
    mostly = {e.column: e.mostly for e in suite if e.expectation_type == "expect_column_values_to_not_be_null"}
    assert mostly["workclass"] == pytest.approx(0.9) and mostly["age"] == 1.0
    assert by_type["expect_table_row_count_to_be_between"] == [None]


def test_clean_adult_snapshot_passes_and_writes_data_docs(snapshot):
    ctx, snapshot_uri = snapshot
    uri = validate(ctx, snapshot_uri)
    result = json.loads((ctx.stage_dir("validate") / "validation.json").read_text())
    assert uri == str(ctx.stage_dir("validate"))
    assert result["success"] is True and result["failed"] == []
    assert result["evaluated"] == len(build_expectations(ctx.config))
    index = ctx.stage_dir("validate") / "data_docs" / "index.html"
    assert index.exists() and "adult-income" in index.read_text()


def test_broken_snapshot_is_blocked_with_columns_and_expectations_named(snapshot):
    ctx, snapshot_uri = snapshot
    df = read_snapshot(snapshot_uri)
    df.loc[:9, "age"] = 140.0  # out of the declared 17..90
    df.loc[10:19, "sex"] = "Martian"  # not in the value set
    df.loc[: len(df) // 2, "workclass"] = np.nan  # far above max_missing 0.1
    df.to_parquet(f"{snapshot_uri}/{SNAPSHOT}", index=False)

    with pytest.raises(ValidationFailed) as failure:
        validate(ctx, snapshot_uri)

    message = str(failure.value)
    assert "age: expect_column_values_to_be_between failed" in message and "140.0" in message
    assert "sex: expect_column_values_to_be_in_set failed" in message and "Martian" in message
    assert "workclass: expect_column_values_to_not_be_null failed" in message
    assert "education" not in message
    # The evidence is kept for the operator even though the run is blocked.
    result = json.loads((ctx.stage_dir("validate") / "validation.json").read_text())
    assert {(c["column"], c["expectation"]) for c in result["failed"]} == {
        ("age", "expect_column_values_to_be_between"),
        ("sex", "expect_column_values_to_be_in_set"),
        ("workclass", "expect_column_values_to_not_be_null"),
    }
    assert (ctx.stage_dir("validate") / "data_docs" / "index.html").exists()


def test_too_few_rows_fail_the_table_expectation(snapshot):
    ctx, snapshot_uri = snapshot
    read_snapshot(snapshot_uri).head(100).to_parquet(f"{snapshot_uri}/{SNAPSHOT}", index=False)

    with pytest.raises(ValidationFailed, match=r"\(table\): expect_table_row_count_to_be_between failed"):
        validate(ctx, snapshot_uri)
