"""Ingest: parsing partitions with the schema, quarantining malformed rows, the window snapshot."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pandas as pd
import pytest
from conftest import ADULT_CONFIG, entries

from pipelines.core.artifacts import fingerprint_frame, read_metadata
from pipelines.core.config import load_config
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName, Status
from pipelines.core.outputs import SOURCE_DS, SOURCE_ROW, IngestOutput
from pipelines.data.ingest import QUARANTINE_COLUMNS, IngestError, ingest_window, parse_partition, window_dates

SNAPSHOT, QUARANTINE = IngestOutput("").snapshot.name, IngestOutput("").quarantine.name

SCHEMA = load_config(ADULT_CONFIG).data_schema
DAY = date(2026, 1, 5)
ROW = {
    "age": "39",
    "workclass": "State-gov",
    "fnlwgt": "77516",
    "education": "Bachelors",
    "education_num": "13",
    "marital_status": "Never-married",
    "occupation": "Adm-clerical",
    "relationship": "Not-in-family",
    "race": "White",
    "sex": "Male",
    "capital_gain": "2174",
    "capital_loss": "0",
    "hours_per_week": "40",
    "native_country": "United-States",
    "income": "<=50K",
}


def csv_text(rows: list[dict[str, str] | str], columns: list[str] | None = None) -> str:
    """A partition: the header, then each row (a dict in ``columns`` order, or a raw line as is)."""
    columns = columns or list(ROW)
    lines = [",".join(columns)]
    lines += [r if isinstance(r, str) else ",".join(r.get(c, "") for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


def test_window_dates_end_at_ds_oldest_first():
    assert window_dates(date(2026, 3, 2), 3) == [date(2026, 2, 28), date(2026, 3, 1), date(2026, 3, 2)]
    assert window_dates(DAY, 1) == [DAY]


def test_parse_partition_types_good_rows():
    text = csv_text([ROW, {**ROW, "age": "52", "workclass": "", "income": ">50K"}])

    rows, bad, info = parse_partition(text, SCHEMA, DAY)

    assert bad.empty
    assert list(bad.columns) == QUARANTINE_COLUMNS
    assert info == {"missing_columns": [], "unexpected_columns": []}
    assert list(rows.columns) == [*SCHEMA.columns, SOURCE_DS, SOURCE_ROW]
    assert "fnlwgt" not in rows.columns
    assert rows["age"].tolist() == [39.0, 52.0]
    assert rows["age"].dtype == "float64"
    assert rows["capital_gain"].tolist() == [2174.0, 2174.0]
    assert rows["workclass"].isna().tolist() == [False, True]
    assert rows["income"].tolist() == ["<=50K", ">50K"]
    assert rows[SOURCE_DS].tolist() == ["2026-01-05"] * 2
    assert rows[SOURCE_ROW].tolist() == [2, 3]


def test_parse_partition_quarantines_malformed_rows_with_line_and_reason():
    short = ",".join(list(ROW.values())[:-1])
    text = csv_text(
        [
            ROW,  # line 2
            short,  # line 3: one field too few
            {**ROW, "age": "thirty"},  # line 4
            "",  # line 5: blank, skipped but counted
            {**ROW, "hours_per_week": "40h"},  # line 6
            {**ROW, "income": ""},  # line 7
            {**ROW, "income": ">50K"},  # line 8
        ]
    )

    rows, bad, _ = parse_partition(text, SCHEMA, DAY)

    assert rows[SOURCE_ROW].tolist() == [2, 8]
    assert bad["line"].tolist() == [3, 4, 6, 7]
    assert bad["ds"].tolist() == ["2026-01-05"] * 4
    reasons = bad["reason"].tolist()
    assert reasons[0] == "expected 15 fields, got 14"
    assert reasons[1].startswith("age: not a number") and "'thirty'" in reasons[1]
    assert reasons[2].startswith("hours_per_week: not a number") and "'40h'" in reasons[2]
    assert reasons[3].startswith("income:") and "missing" in reasons[3]
    assert bad["raw"].iloc[0] == short
    assert "thirty" in bad["raw"].iloc[1]


def test_header_lacking_a_declared_column_keeps_rows_with_nulls():
    columns = [c for c in ROW if c not in ("hours_per_week", "occupation")]

    rows, bad, info = parse_partition(csv_text([ROW, ROW], columns), SCHEMA, DAY)

    assert bad.empty
    assert len(rows) == 2
    assert info["missing_columns"] == ["hours_per_week", "occupation"]
    assert rows["hours_per_week"].isna().all()
    assert rows["occupation"].isna().all()
    assert rows["age"].tolist() == [39.0, 39.0]


def test_unexpected_columns_are_listed_but_ignored_columns_are_not():
    columns = [*ROW, "shoe_size"]

    rows, bad, info = parse_partition(csv_text([{**ROW, "shoe_size": "44"}], columns), SCHEMA, DAY)

    assert bad.empty and len(rows) == 1
    assert info["unexpected_columns"] == ["shoe_size"]  # fnlwgt is declared in schema.ignore
    assert "shoe_size" not in rows.columns


def test_renamed_column_is_both_missing_and_unexpected():
    columns = [c if c != "sex" else "sex_renamed" for c in ROW]
    row = {**ROW, "sex_renamed": ROW["sex"]}

    rows, _, info = parse_partition(csv_text([row], columns), SCHEMA, DAY)

    assert info == {"missing_columns": ["sex"], "unexpected_columns": ["sex_renamed"]}
    assert rows["sex"].isna().all()


@pytest.fixture
def ctx(small_adult):
    return RunContext.create(small_adult, "2026-01-03")


def partition(ctx: RunContext, day: str):
    return ctx.config.data.root / ctx.config.data.partition_pattern.format(date=day)


def test_ingest_writes_snapshot_quarantine_and_metadata(ctx):
    uri = ingest_window(ctx)

    out = ctx.stage_dir(StageName.INGEST)
    assert uri == str(out)
    assert sorted(p.name for p in out.iterdir()) == ["metadata.json", QUARANTINE, SNAPSHOT]
    assert entries(out.parent) == ["ingest"], "no temporary folder is left behind"
    snapshot = IngestOutput(uri).read_snapshot()
    assert len(snapshot) == 3 * 800
    assert sorted(snapshot[SOURCE_DS].unique()) == ["2026-01-01", "2026-01-02", "2026-01-03"]
    quarantine = pd.read_csv(out / QUARANTINE)
    assert list(quarantine.columns) == QUARANTINE_COLUMNS
    assert quarantine.empty

    meta = read_metadata(uri)
    assert meta["stage"] == "ingest"
    assert meta["ds"] == "2026-01-03"
    assert meta["config_hash"] == ctx.config.fingerprint
    assert meta["fingerprint"] == fingerprint_frame(snapshot)
    assert meta["rows"] == 2400 and meta["quarantined"] == 0 and meta["window_days"] == 3
    assert [p["ds"] for p in meta["partitions"]] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    for entry in meta["partitions"]:
        assert entry["status"] == "read"
        assert entry["rows"] == 800
        assert entry["sha256"] == hashlib.sha256(partition(ctx, entry["ds"]).read_bytes()).hexdigest()


def test_ingest_without_the_partition_for_d_fails(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-08")

    with pytest.raises(IngestError, match="no partition for 2026-01-08"):
        ingest_window(ctx)
    assert not ctx.stage_dir(StageName.INGEST).exists()


def test_ingest_records_a_missing_earlier_partition(ctx):
    partition(ctx, "2026-01-02").unlink()

    meta = read_metadata(ingest_window(ctx))

    assert meta["rows"] == 1600
    assert [p["status"] for p in meta["partitions"]] == ["read", "missing", "read"]
    assert meta["partitions"][1]["path"] == str(partition(ctx, "2026-01-02"))


def test_ingest_fails_above_max_quarantine_fraction_but_writes_the_artifacts(ctx):
    path = partition(ctx, "2026-01-03")
    with path.open("a") as fh:
        fh.writelines("garbage,row\n" for _ in range(200))  # 200 of 2,600 rows: 7.7% > 5%

    with pytest.raises(IngestError, match="max_quarantine_fraction") as excinfo:
        ingest_window(ctx)

    assert "200 of 2600" in str(excinfo.value)
    out = ctx.stage_dir(StageName.INGEST)
    quarantine = pd.read_csv(out / QUARANTINE)
    assert len(quarantine) == 200
    assert set(quarantine["reason"]) == {"expected 15 fields, got 2"}
    assert quarantine["line"].tolist() == list(range(802, 1002))
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == Status.FAILED, "the evidence is kept but marked failed, so nothing reads it as good"
    assert meta["quarantined"] == 200
    assert meta["quarantined_fraction"] == pytest.approx(200 / 2600, abs=1e-6)


def test_ingest_below_max_quarantine_fraction_succeeds(ctx):
    with partition(ctx, "2026-01-02").open("a") as fh:
        fh.write("garbage,row\n")

    meta = read_metadata(ingest_window(ctx))

    assert meta["rows"] == 2400
    assert meta["quarantined"] == 1
    assert [p["quarantined"] for p in meta["partitions"]] == [0, 1, 0]


def test_reingest_gives_the_same_fingerprint_and_replaces_the_directory(ctx):
    first = read_metadata(ingest_window(ctx))
    (ctx.stage_dir(StageName.INGEST) / "stale.txt").write_text("from an older run")

    second = read_metadata(ingest_window(ctx))

    assert second["fingerprint"] == first["fingerprint"]
    assert not (ctx.stage_dir(StageName.INGEST) / "stale.txt").exists()


def test_a_changed_partition_changes_the_fingerprint(ctx):
    first = read_metadata(ingest_window(ctx))
    path = partition(ctx, "2026-01-01")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))

    second = read_metadata(ingest_window(ctx))

    assert second["rows"] == first["rows"] - 1
    assert second["fingerprint"] != first["fingerprint"]


def test_quarantine_line_numbers_are_physical_lines_even_after_a_multiline_field():
    schema = load_config(ADULT_CONFIG).data_schema
    text = csv_text([{**ROW, "workclass": '"Pri\nvate"'}, "oops"])

    _, bad, _ = parse_partition(text, schema, DAY)

    # header = line 1, the quoted two-line record = lines 2-3, "oops" = line 4
    assert bad["line"].tolist() == [4]
