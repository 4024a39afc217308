"""Ingest: parsing partitions with the schema, quarantining malformed rows, the window snapshot."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import ADULT_CONFIG, entries

from pipelines.core.artifacts import fingerprint_frame, read_metadata
from pipelines.core.config import load_config
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName, Status
from pipelines.core.outputs import SOURCE_DS, SOURCE_ROW, IngestOutput
from pipelines.data.ingest import IngestError, ingest_window
from pipelines.data.partitions import QUARANTINE_COLUMNS, parse_partition, read_partition, window_dates

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

    part = parse_partition(text, SCHEMA, DAY)
    rows, bad = part.rows, part.quarantined

    assert bad.empty
    assert list(bad.columns) == QUARANTINE_COLUMNS
    assert part.problems == part.warnings == part.missing_columns == part.unexpected_columns == []
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

    part = parse_partition(text, SCHEMA, DAY)
    rows, bad = part.rows, part.quarantined

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


def test_a_header_lacking_a_declared_column_is_a_structural_problem_and_quarantines_every_row():
    columns = [c for c in ROW if c not in ("hours_per_week", "occupation")]

    part = parse_partition(csv_text([ROW, ROW], columns), SCHEMA, DAY)

    assert part.rows.empty
    assert part.missing_columns == ["hours_per_week", "occupation"]
    assert part.problems == [
        "column 'hours_per_week' is missing from the header",
        "column 'occupation' is missing from the header",
    ]
    assert part.quarantined["reason"].tolist() == ["column 'hours_per_week' is missing from the header"] * 2
    assert part.quarantined["line"].tolist() == [2, 3], "rows in = kept + quarantined"


def test_unexpected_columns_are_listed_but_ignored_columns_are_not():
    columns = [*ROW, "shoe_size"]

    part = parse_partition(csv_text([{**ROW, "shoe_size": "44"}], columns), SCHEMA, DAY)

    assert part.quarantined.empty and len(part.rows) == 1 and part.problems == []
    assert part.unexpected_columns == ["shoe_size"]  # fnlwgt is declared in schema.ignore
    assert "shoe_size" not in part.rows.columns


@pytest.mark.parametrize(
    ("renamed", "to", "hint"),
    [("sex", "sex_renamed", "sex_renamed"), ("income", "Income", "Income"), ("occupation", "ocupation", "ocupation")],
)
def test_a_renamed_header_is_named_with_a_close_match_hint(renamed, to, hint):
    columns = [c if c != renamed else to for c in ROW]
    row = {**ROW, to: ROW[renamed]}

    part = parse_partition(csv_text([row], columns), SCHEMA, DAY)

    assert part.missing_columns == [renamed] and part.unexpected_columns == [to]
    assert part.problems == [f"column {renamed!r} is missing from the header (renamed? the header has {hint!r})"]
    assert "label is missing" not in part.quarantined["reason"].iloc[0]


def test_a_byte_order_mark_is_stripped_and_noted():
    part = parse_partition("\ufeff" + csv_text([ROW, ROW]), SCHEMA, DAY)

    assert part.problems == [] and part.quarantined.empty
    assert part.rows["age"].tolist() == [39.0, 39.0]
    assert part.warnings == ["UTF-8 byte-order mark at the start of the file (stripped)"]


def test_a_duplicate_header_column_is_named_with_its_positions():
    columns = [*ROW, "age"]

    part = parse_partition(csv_text([{**ROW}], columns), SCHEMA, DAY)

    assert part.problems == ["duplicate header column 'age' (positions [1, 16])"]
    assert part.rows.empty and len(part.quarantined) == 1


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

    bad = parse_partition(text, schema, DAY).quarantined

    # header = line 1, the quoted two-line record = lines 2-3, "oops" = line 4
    assert bad["line"].tolist() == [4]


# Each partition is judged on its own, not only the window.


def header_and(ctx: RunContext, day: str, rows: int) -> None:
    """Keep only the header and the first ``rows`` data rows of ``day``'s partition."""
    path = partition(ctx, day)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[: 1 + rows]))


@pytest.mark.parametrize(("content", "what"), [("", "no data rows"), (None, "no data rows")])
def test_an_empty_or_header_only_partition_for_d_blocks_the_run(ctx, content, what):
    if content is None:
        header_and(ctx, "2026-01-03", 0)
    else:
        partition(ctx, "2026-01-03").write_text(content)

    with pytest.raises(
        IngestError,
        match=rf"ds=2026-01-03 \(the run's own day\): 0 usable rows, fewer than "
        rf"min_partition_rows 100 \(the file has {what}\)",
    ):
        ingest_window(ctx)
    assert read_metadata(ctx.stage_dir(StageName.INGEST))["status"] == Status.FAILED


def test_too_few_usable_rows_for_d_block_but_enough_pass(ctx):
    original = partition(ctx, "2026-01-03").read_text()
    header_and(ctx, "2026-01-03", 99)
    with pytest.raises(IngestError, match="99 usable rows, fewer than min_partition_rows 100"):
        ingest_window(ctx)

    partition(ctx, "2026-01-03").write_text(original)
    header_and(ctx, "2026-01-03", 100)
    assert read_metadata(ingest_window(ctx))["partitions"][-1]["rows"] == 100


def test_a_directory_where_d_partition_should_be_is_named(ctx):
    path = partition(ctx, "2026-01-03")
    path.unlink()
    path.mkdir()

    with pytest.raises(
        IngestError, match=r"ds=2026-01-03 \(the run's own day\): .*part-0.csv is a directory, not a file"
    ):
        ingest_window(ctx)


def test_one_day_with_a_renamed_label_header_blocks_though_the_window_share_is_small(tmp_path, adult_frame):
    from conftest import write_config

    from pipelines.data.demo import write_partitions

    path = write_config(tmp_path, {"data": {"window_days": 14}})
    write_partitions(adult_frame, load_config(path), date(2026, 1, 1), rows_per_day=800, days=14)
    ctx = RunContext.create(path, "2026-01-14")
    day = partition(ctx, "2026-01-10")
    lines = day.read_text().splitlines(keepends=True)
    day.write_text(lines[0].replace("income", "income_class") + "".join(lines[1:401]))  # 400 rows, 3.6% of window

    with pytest.raises(IngestError) as excinfo:
        ingest_window(ctx)

    message = str(excinfo.value)
    assert (
        "ds=2026-01-10: column 'income' is missing from the header (renamed? the header has 'income_class')" in message
    )
    assert "blocked (1 problem(s))" in message, "the structural problem is named once, not as 400 bad rows"
    meta = read_metadata(ctx.stage_dir(StageName.INGEST))
    assert meta["rows"] + meta["quarantined"] == 13 * 800 + 400, "no row is lost"


def test_a_day_without_a_column_that_may_be_empty_still_blocks_naming_the_column(ctx):
    path = partition(ctx, "2026-01-02")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns=["workclass"])
    frame.to_csv(path, index=False)

    with pytest.raises(IngestError, match=r"ds=2026-01-02: column 'workclass' is missing from the header"):
        ingest_window(ctx)


def test_missing_days_are_tolerated_up_to_the_limit_and_reported(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-06", window_days=5)
    partition(ctx, "2026-01-03").unlink()

    meta = read_metadata(ingest_window(ctx))
    assert meta["warnings"] == [
        "1 day(s) of the window have no rows: 2026-01-03 (missing) (tolerated: max_missing_days 1)"
    ]
    assert meta["days_read"] == 4

    partition(ctx, "2026-01-04").write_text("")  # an empty partition counts as a day without rows
    with pytest.raises(
        IngestError,
        match=r"2 day\(s\) of the window have no rows: 2026-01-03 \(missing\), "
        r"2026-01-04 \(empty\); more than max_missing_days 1",
    ):
        ingest_window(ctx)


def test_days_before_the_source_began_are_not_gaps(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03", window_days=6)  # three days before 2026-01-01

    meta = read_metadata(ingest_window(ctx))

    assert [p["status"] for p in meta["partitions"]] == ["before_source"] * 3 + ["read"] * 3
    assert meta["warnings"] == [
        "3 day(s) of the window, 2025-12-29..2025-12-31, are before the source's first partition"
    ]


def test_one_partition_mostly_malformed_blocks_though_the_window_share_is_under_the_limit(ctx):
    path = partition(ctx, "2026-01-02")
    lines = path.read_text().splitlines(keepends=True)
    broken = [line.replace(",", ";", 1) if 1 <= i <= 250 else line for i, line in enumerate(lines)]
    path.write_text("".join(broken))  # 250 of 800 rows: 31% of the day, 10% of the window

    with pytest.raises(IngestError) as excinfo:
        ingest_window(ctx)

    assert "ds=2026-01-02: 250 of 800 rows (31.2%) are malformed, above max_partition_quarantine_fraction 20.0%" in str(
        excinfo.value
    )


def test_unexpected_columns_are_logged_once_per_run(ctx, caplog):
    for day in ("2026-01-01", "2026-01-02", "2026-01-03"):
        path = partition(ctx, day)
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for k in range(30):
            frame[f"extra_{k:02d}"] = "x"
        frame.to_csv(path, index=False)

    with caplog.at_level("INFO", logger="pipelines.data.ingest"):
        meta = read_metadata(ingest_window(ctx))

    mentions = [r.getMessage() for r in caplog.records if "extra_00" in r.getMessage()]
    assert mentions == [
        "ingest: 30 column(s) not in the config, ignored, in 3 partition(s): "
        + ", ".join(f"extra_{k:02d}" for k in range(10))
        + " and 20 more"
    ]
    assert meta["unexpected_columns"] == mentions[0].removeprefix("ingest: ")


@pytest.mark.parametrize("days", [0, -3])
def test_a_window_of_no_days_is_refused_clearly(small_adult, days):
    from pipelines.core.contracts import PipelineError

    with pytest.raises(PipelineError, match=f"window_days must be a whole number of days, 1 or more; got {days}"):
        RunContext.create(small_adult, "2026-01-03", window_days=days)


def test_the_summary_counts_the_days_really_read_and_shows_the_warnings(ctx):
    from pipelines.reporting.summary import render

    partition(ctx, "2026-01-02").unlink()
    ingest_window(ctx)

    lines = render(ctx.config, ctx.ds).splitlines()

    assert "  ingest     1600 rows from 2 of 3 days, 0 quarantined" in lines
    assert (
        "    warning: 1 day(s) of the window have no rows: 2026-01-02 (missing) (tolerated: max_missing_days 1)"
        in lines
    )


def test_the_streamed_snapshot_equals_the_window_read_whole(ctx):
    """Row groups written day by day give the rows, dtypes, fingerprint and quarantine of one concatenation,
    even when a column is empty all day (it keeps the config's type) and a row is malformed."""
    emptied = partition(ctx, "2026-01-02")
    frame = pd.read_csv(emptied, dtype=str, keep_default_na=False)
    frame[["occupation", "capital_gain"]] = ""
    text = frame.to_csv(index=False) + "garbage,row\n"
    emptied.write_text(text)
    days = window_dates(ctx.ds, 3)
    parsed = [read_partition(partition(ctx, d.isoformat()), SCHEMA, d) for d in days]
    whole = pd.concat([rows for rows, _, _ in parsed], ignore_index=True)
    quarantined = pd.concat([bad for _, bad, _ in parsed], ignore_index=True)

    uri = ingest_window(ctx)

    out = IngestOutput(uri)
    pd.testing.assert_frame_equal(out.read_snapshot(), whole)
    pd.testing.assert_frame_equal(pd.concat(out.iter_snapshot(batch_rows=500), ignore_index=True), whole)
    assert [len(b) for b in out.iter_snapshot(batch_rows=1000)] == [1000, 1000, len(whole) - 2000]
    assert read_metadata(uri)["fingerprint"] == fingerprint_frame(whole)
    assert out.quarantine.read_text() == quarantined.to_csv(index=False)
    assert whole.loc[whole[SOURCE_DS] == "2026-01-02", ["occupation", "capital_gain"]].isna().all(axis=None)
    assert len(quarantined) == 1
    assert pq.ParquetFile(out.snapshot).num_row_groups == 3


def test_the_schemas_missing_values_are_missing_in_every_column():
    schema = SCHEMA.model_copy(update={"missing_values": ["NA", "?"]})
    text = csv_text(
        [
            {**ROW, "age": "NA", "workclass": " ? "},  # line 2: both missing, the row kept
            {**ROW, "income": "NA"},  # line 3: a missing label
            {**ROW, "education": "N/A"},  # line 4: not a spelling of missing here, a value
        ]
    )

    part = parse_partition(text, schema, DAY)

    assert part.rows[SOURCE_ROW].tolist() == [2, 4]
    assert part.rows["age"].isna().tolist() == [True, False]
    assert part.rows["workclass"].isna().tolist() == [True, False]
    assert part.rows["education"].tolist()[1] == "N/A"
    assert part.quarantined["reason"].tolist() == ["income: label is missing"]
    plain = parse_partition(text, SCHEMA, DAY)  # without them, NA is not a number and a label value
    assert plain.quarantined["reason"].tolist() == ["age: not a number: 'NA'"]
    assert plain.rows["income"].tolist() == ["NA", "<=50K"]
