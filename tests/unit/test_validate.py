"""Validation with real Great Expectations: a suite generated from the schema that really blocks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ADULT_CONFIG

from pipelines.core.config import load_config
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName, Status
from pipelines.core.outputs import IngestOutput, ValidationOutput
from pipelines.data.ingest import ingest_window
from pipelines.data.validate import ValidationFailed, build_expectations, validate_snapshot


@pytest.fixture
def snapshot(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03")
    return ctx, ingest_window(ctx)


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
    uri = validate_snapshot(ctx, snapshot_uri)
    result = json.loads((ValidationOutput(ctx.stage_dir(StageName.VALIDATE)).result_path).read_text())
    assert uri == str(ctx.stage_dir(StageName.VALIDATE))
    assert result["success"] is True and result["failed"] == []
    assert result["evaluated"] == len(build_expectations(ctx.config))
    index = ValidationOutput(ctx.stage_dir(StageName.VALIDATE)).data_docs / "index.html"
    assert index.exists() and "adult-income" in index.read_text()


def test_broken_snapshot_is_blocked_with_columns_and_expectations_named(snapshot):
    ctx, snapshot_uri = snapshot
    df = IngestOutput(snapshot_uri).read_snapshot()
    df.loc[:9, "age"] = 140.0  # out of the declared 17..90
    df.loc[10:19, "sex"] = "Martian"  # not in the value set
    df.loc[: len(df) // 2, "workclass"] = np.nan  # far above max_missing 0.1
    df.to_parquet(IngestOutput(snapshot_uri).snapshot, index=False)

    with pytest.raises(ValidationFailed) as failure:
        validate_snapshot(ctx, snapshot_uri)

    message = str(failure.value)
    assert "age: expect_column_values_to_be_between failed" in message and "140.0" in message
    assert "sex: expect_column_values_to_be_in_set failed" in message and "Martian" in message
    assert "workclass: expect_column_values_to_not_be_null failed" in message
    assert "education" not in message
    # The evidence is kept for the operator even though the run is blocked.
    result = json.loads((ValidationOutput(ctx.stage_dir(StageName.VALIDATE)).result_path).read_text())
    assert {(c["column"], c["expectation"]) for c in result["failed"]} == {
        ("age", "expect_column_values_to_be_between"),
        ("sex", "expect_column_values_to_be_in_set"),
        ("workclass", "expect_column_values_to_not_be_null"),
    }
    assert (ValidationOutput(ctx.stage_dir(StageName.VALIDATE)).data_docs / "index.html").exists()
    assert ValidationOutput(ctx.stage_dir(StageName.VALIDATE)).metadata()["status"] == Status.FAILED


def test_too_few_rows_fail_the_table_expectation(snapshot):
    ctx, snapshot_uri = snapshot
    IngestOutput(snapshot_uri).read_snapshot().head(100).to_parquet(IngestOutput(snapshot_uri).snapshot, index=False)

    with pytest.raises(ValidationFailed, match=r"\(table\): expect_table_row_count_to_be_between failed"):
        validate_snapshot(ctx, snapshot_uri)
