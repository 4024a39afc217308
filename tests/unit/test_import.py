"""`data import`: a user's own CSV/Parquet files split by a date column into the daily partitions ingest reads."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import write_config

from pipelines.cli import main
from pipelines.core.config import load_config
from pipelines.core.context import RunContext
from pipelines.core.outputs import IngestOutput
from pipelines.data import importer
from pipelines.data.importer import QUARANTINE, STAGING, parse_days
from pipelines.data.ingest import ingest_window

# A churn data set with three features: nothing in the importer may know Adult.
TOY = {
    "name": "toy-churn",
    "data": {"window_days": 4},
    "schema": {
        "label": {"name": "churned", "positive": "yes", "values": ["no", "yes"]},
        "ignore": ["customer_id"],
        "features": [
            {"name": "tenure", "kind": "numeric", "min": 0, "max": 100},
            {"name": "plan", "kind": "categorical", "values": ["basic", "pro"]},
            {"name": "spend", "kind": "numeric", "min": 0},
        ],
    },
    "slices": [],
    "protected_attributes": [],
    "tags": [],
    "expectations": None,
    "thresholds": {"ingest": {"min_partition_rows": 5}},
}
HEADER = ["tenure", "plan", "spend", "churned", "customer_id"]  # features, label, then the ignored column
START = date(2026, 1, 1)


def toy_config(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = write_config(directory, TOY)
    raw = yaml.safe_load(path.read_text())
    raw["thresholds"]["fairness"] = {}  # the base's fairness limits name Adult's attributes
    path.write_text(yaml.safe_dump(raw))
    return path


def churn(n: int, days: int = 4, seed: int = 0) -> pd.DataFrame:
    """``n`` customers signed up over ``days`` days from START (timestamps in random order), plus a column the
    config does not declare."""
    rng = np.random.default_rng(seed)
    minutes = rng.integers(0, days * 24 * 60, n)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n) + 1000 * seed,
            "signed_up": [(pd.Timestamp(START) + pd.Timedelta(minutes=int(m))).isoformat() for m in minutes],
            "tenure": rng.integers(0, 100, n),
            "plan": rng.choice(["basic", "pro"], n),
            "spend": rng.gamma(2.0, 30.0, n).round(2),
            "churned": rng.choice(["no", "yes"], n),
            "region": rng.choice(["eu", "us"], n),
        }
    )


def day_of(frame: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(frame["signed_up"]).dt.date


def run(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI's entry point in-process: (exit code, stdout, stderr)."""
    code = main(["data", "import", *args])
    out, err = capsys.readouterr()
    return code, out, err


def partition(config: Path, day: date) -> Path:
    return load_config(config).data.partition(day)


def partitions(config: Path) -> dict[str, str]:
    """Every partition file under the config's root, by its path relative to the root, with its text."""
    root = load_config(config).data.root
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.glob("ds=*/part-0.csv"))}


def read(path: Path) -> list[list[str]]:
    with path.open(newline="") as fh:
        return list(csv.reader(fh))


def test_csv_import_writes_daily_partitions_that_ingest_reads_back_whole(tmp_path, capsys):
    config = toy_config(tmp_path)
    source = churn(200)
    # A byte-order mark, as Excel writes it, must not end up glued to the first column's name.
    (tmp_path / "export.csv").write_bytes(b"\xef\xbb\xbf" + source.to_csv(index=False).encode())

    code, out, err = run(capsys, "--config", str(config), "--source", str(tmp_path / "export.csv"),
                         "--date-column", "signed_up")  # fmt: skip

    assert code == 0, err
    expected = day_of(source).value_counts().sort_index()
    for day, n in expected.items():
        rows = read(partition(config, day))
        assert rows[0] == HEADER and len(rows) - 1 == n, day
    assert f"wrote 200 rows to 4 daily partitions under {tmp_path / 'partitions'}: 2026-01-01 .. 2026-01-04" in out
    assert "not written (--keep-extra-columns keeps them): signed_up, region" in out
    assert "quarantined: none" in out
    assert not (tmp_path / "partitions" / STAGING).exists() and not (tmp_path / "partitions" / QUARANTINE).exists()

    ingested = IngestOutput(ingest_window(RunContext.create(config, date(2026, 1, 4))))
    snapshot = ingested.read_snapshot()
    assert len(snapshot) == 200 and pd.read_csv(ingested.quarantine).empty
    assert sorted(snapshot["spend"]) == sorted(source["spend"])
    assert sorted(snapshot["tenure"]) == sorted(source["tenure"].astype(float))


def test_extra_source_columns_are_kept_only_when_asked(tmp_path, capsys):
    config = toy_config(tmp_path)
    churn(40).to_csv(tmp_path / "export.csv", index=False)

    code, _, err = run(capsys, "--config", str(config), "--source", str(tmp_path / "export.csv"),
                       "--date-column", "signed_up", "--keep-extra-columns")  # fmt: skip

    assert code == 0, err
    assert read(partition(config, START))[0] == [*HEADER, "signed_up", "region"]


def test_parquet_source_with_a_typed_zoned_timestamp_keeps_the_local_date(tmp_path, capsys):
    config = toy_config(tmp_path)
    source = churn(120, days=3).drop(columns="signed_up")
    # 23:30 in New York on Jan 1 is Jan 2 in UTC: the partition is the date the row was written with.
    local = pd.Timestamp("2026-01-01 23:30", tz="America/New_York")
    source["signed_up"] = [local + pd.Timedelta(days=i % 3) for i in range(len(source))]
    source.loc[3, "spend"] = None  # a null becomes an empty field, which ingest reads as missing
    source.to_parquet(tmp_path / "export.parquet", index=False)

    code, out, err = run(capsys, "--config", str(config), "--source", str(tmp_path / "export.parquet"),
                         "--date-column", "signed_up")  # fmt: skip

    assert code == 0, err
    assert "wrote 120 rows to 3 daily partitions" in out and ": 2026-01-01 .. 2026-01-03" in out
    first = read(partition(config, START))
    assert first[0] == HEADER and len(first) - 1 == 40
    assert first[1] == [str(source.loc[0, c]) for c in ["tenure", "plan", "spend", "churned", "customer_id"]]
    assert first[2][2] == ""  # row 3 is Jan 1's second (rows 0, 3, 6, ... are Jan 1): its spend is empty
    ingested = IngestOutput(ingest_window(RunContext.create(config, date(2026, 1, 3), window_days=3)))
    assert len(ingested.read_snapshot()) == 120 and pd.read_csv(ingested.quarantine).empty


def test_a_glob_combines_several_files_in_name_order(tmp_path, capsys):
    config = toy_config(tmp_path)
    folder = tmp_path / "exports"
    folder.mkdir()
    a, b = churn(30, seed=1), churn(30, seed=2)
    a.to_csv(folder / "2026-01-a.csv", index=False)
    b.to_parquet(folder / "2026-01-b.parquet", index=False)
    (folder / "README.md").write_text("not data")

    code, out, err = run(capsys, "--config", str(config), "--source", f"{folder}/2026-*",
                         "--date-column", "signed_up")  # fmt: skip

    assert code == 0, err
    assert "read 2 files, 60 rows" in out and "wrote 60 rows" in out
    both = pd.concat([a, b])
    ids = [int(row[-1]) for row in read(partition(config, START))[1:]]
    assert ids == both.loc[day_of(both) == START, "customer_id"].tolist()  # a's rows, then b's


def test_rows_without_a_usable_date_are_quarantined_with_file_line_and_reason(tmp_path, capsys):
    config = toy_config(tmp_path)
    source = tmp_path / "export.csv"
    churn(20).to_csv(source, index=False)
    with source.open("a") as fh:
        fh.write('9000,2026-01-01,5,"pro\nplus",1.0,no,eu\n')  # lines 22-23: the header and 20 rows come first
        fh.write("9001,not-a-date,5,pro,1.0,no,eu\n")
        fh.write("9002,,5,pro,1.0,no,eu\n")
        fh.write("9003,2026-02-30,5,pro,1.0,no,eu\n")
        fh.write("9004,2026-01-02,5,pro\n")

    code, out, err = run(capsys, "--config", str(config), "--source", str(source), "--date-column", "signed_up")

    assert code == 0, err
    assert "read 1 file, 25 rows" in out and "wrote 21 rows" in out
    assert "quarantined 4 rows (2 date is not ISO 8601; 1 date is empty; 1 expected 7 fields, got 4)" in out
    [written] = (tmp_path / "partitions" / QUARANTINE).glob("*.csv")
    assert f"-> {written}" in out
    rows = read(written)
    assert rows[0] == ["file", "line", "reason", "raw"]
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [
        (str(source), "24", "date is not ISO 8601"),
        (str(source), "25", "date is empty"),
        (str(source), "26", "date is not ISO 8601"),
        (str(source), "27", "expected 7 fields, got 4"),
    ]
    assert rows[1][3] == "9001,not-a-date,5,pro,1.0,no,eu"


def test_dates_in_another_format_need_date_format_and_fail_whole_without_it(tmp_path, capsys):
    config = toy_config(tmp_path)
    source = tmp_path / "export.csv"
    frame = churn(10, days=1)
    frame["signed_up"] = "05/01/2026"  # 5 January, day first
    frame.to_csv(source, index=False)
    args = ["--config", str(config), "--source", str(source), "--date-column", "signed_up"]

    code, _, err = run(capsys, *args)

    assert code == 1
    assert "no row of 'signed_up' has a usable date" in err and "'05/01/2026' (export.csv line 2)" in err
    assert "--date-format" in err and partitions(config) == {}

    code, out, err = run(capsys, *args, "--date-format", "%d/%m/%Y")

    assert code == 0, err
    assert list(partitions(config)) == ["ds=2026-01-05/part-0.csv"]


def test_a_declared_column_the_source_lacks_fails_before_writing_with_a_close_match(tmp_path, capsys):
    config = toy_config(tmp_path)
    source = tmp_path / "export.csv"
    churn(20).rename(columns={"tenure": "Tenure_months", "churned": "churn"}).to_csv(source, index=False)
    args = ["--config", str(config), "--source", str(source), "--date-column", "signed_up"]

    code, _, err = run(capsys, *args)

    assert code == 1
    assert "the source lacks 2 columns the config declares (nothing was written)" in err
    assert "tenure: not in " in err and "close match: 'Tenure_months'" in err
    assert "churned: not in " in err and "close match: 'churn'" in err
    assert "--allow-missing-columns" in err and "Traceback" not in err
    assert not (tmp_path / "partitions").exists()

    code, out, err = run(capsys, *args, "--allow-missing-columns")

    assert code == 0, err
    assert read(partition(config, START))[0] == ["plan", "spend", "customer_id"]
    assert "declared but not in the source (allowed): tenure, churned" in out


def test_existing_partitions_are_refused_unless_overwrite_replaces_them(tmp_path, capsys):
    config = toy_config(tmp_path)
    first, second = tmp_path / "first.csv", tmp_path / "second.csv"
    churn(40, seed=1).to_csv(first, index=False)
    churn(50, seed=2).to_csv(second, index=False)
    assert run(capsys, "--config", str(config), "--source", str(first), "--date-column", "signed_up")[0] == 0
    before = partitions(config)

    code, _, err = run(capsys, "--config", str(config), "--source", str(second), "--date-column", "signed_up")

    assert code == 1
    assert "all 4 partitions to write already exist" in err and "Pass --overwrite to replace them" in err
    assert partitions(config) == before

    code, out, err = run(capsys, "--config", str(config), "--source", str(second), "--date-column", "signed_up",
                         "--overwrite")  # fmt: skip

    assert code == 0, err
    assert "replaced 4 existing partitions" in out
    after = partitions(config)
    assert after != before and sum(text.count("\n") - 1 for text in after.values()) == 50


def test_chunked_reading_writes_the_same_partitions_as_one_pass(tmp_path, capsys, monkeypatch):
    source = tmp_path / "big.csv"
    churn(2000, days=10).to_csv(source, index=False)
    with source.open("a") as fh:
        fh.write("1,someday,5,pro,1.0,no,eu\n")
    whole, chunked = toy_config(tmp_path / "whole"), toy_config(tmp_path / "chunked")
    assert run(capsys, "--config", str(whole), "--source", str(source), "--date-column", "signed_up")[0] == 0
    chunks = []
    monkeypatch.setattr(
        importer, "parse_days", lambda values, fmt: chunks.append(len(values)) or parse_days(values, fmt)
    )

    code, out, err = run(capsys, "--config", str(chunked), "--source", str(source), "--date-column", "signed_up",
                         "--chunk-rows", "7")  # fmt: skip

    assert code == 0, err
    assert len(chunks) == 286 and max(chunks) == 7  # 2,001 rows, 7 at a time
    assert len(partitions(whole)) == 10 and partitions(chunked) == partitions(whole)
    [a] = (tmp_path / "whole" / "partitions" / QUARANTINE).glob("*.csv")
    [b] = (tmp_path / "chunked" / "partitions" / QUARANTINE).glob("*.csv")
    assert a.read_text() == b.read_text() and "wrote 2,000 rows" in out


def test_dry_run_writes_nothing_and_start_end_filter_the_days(tmp_path, capsys):
    config = toy_config(tmp_path)
    source = tmp_path / "export.csv"
    frame = churn(100)
    frame.to_csv(source, index=False)
    args = ["--config", str(config), "--source", str(source), "--date-column", "signed_up"]

    code, out, _ = run(capsys, *args, "--start", "2026-01-02", "--end", "2026-01-03", "--dry-run")

    kept = int(day_of(frame).between(date(2026, 1, 2), date(2026, 1, 3)).sum())
    assert code == 0 and out.startswith("dry run: nothing was written")
    assert f"would write {kept} rows to 2 daily partitions" in out
    assert f"skipped {100 - kept} rows dated outside 2026-01-02 .. 2026-01-03" in out
    assert not (tmp_path / "partitions").exists()

    code, _, _ = run(capsys, *args, "--start", "2026-01-02", "--end", "2026-01-03")

    assert code == 0
    assert list(partitions(config)) == ["ds=2026-01-02/part-0.csv", "ds=2026-01-03/part-0.csv"]


@pytest.mark.parametrize(
    ("source", "extra", "message"),
    [
        ("nothing/*.csv", [], "no file matches 'nothing/*.csv'"),
        ("exports", [], "is a directory: name its files with a quoted glob"),
        ("exports/notes.json", [], "cannot tell the format of"),
        ("exports/semicolons.csv", [], "the header is one column: is the delimiter ';'? pass --delimiter"),
        ("exports/a.csv", ["--date-column", "Signed_Up"], "has no date column 'Signed_Up' (close match: 'signed_up')"),
        ("exports/empty.csv", [], "is empty: a CSV source needs a header row"),
        ("exports/a.csv", ["--start", "2026-02-01"], "all 10 rows with a usable date are dated before 2026-02-01"),
    ],
)
def test_bad_input_is_a_readable_error(tmp_path, capsys, monkeypatch, source, extra, message):
    config = toy_config(tmp_path)
    folder = tmp_path / "exports"
    folder.mkdir()
    churn(10).to_csv(folder / "a.csv", index=False)
    churn(10).to_csv(folder / "semicolons.csv", index=False, sep=";")
    (folder / "notes.json").write_text("{}")
    (folder / "empty.csv").write_text("")
    monkeypatch.chdir(tmp_path)
    date_column = [] if "--date-column" in extra else ["--date-column", "signed_up"]

    code, _, err = run(capsys, "--config", str(config), "--source", source, *date_column, *extra)

    assert code == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "partitions").exists()


def test_python_dash_m_pipelines_data_import_reports_bad_input_without_a_traceback(tmp_path):
    config = toy_config(tmp_path)
    churn(30).to_csv(tmp_path / "export.csv", index=False)
    command = [sys.executable, "-m", "pipelines", "data", "import", "--config", str(config),
               "--source", str(tmp_path / "export.csv"), "--date-column", "signup"]  # fmt: skip

    result = subprocess.run(command, capture_output=True, text=True)

    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "has no date column 'signup' (close match: 'signed_up')" in result.stderr


@pytest.mark.parametrize(
    ("value", "date_format", "day"),
    [
        ("2026-01-05", None, "2026-01-05"),
        (" 2026-01-05T23:30:00-05:00 ", None, "2026-01-05"),  # the date written, not the date in UTC
        ("2026-01-05T01:00:00+09:00", None, "2026-01-05"),
        ("2026-01-05 10:00:00.123Z", None, "2026-01-05"),
        ("05/01/2026", None, None),
        ("2026-02-30", None, None),
        ("", None, None),
        ("05/01/2026", "%d/%m/%Y", "2026-01-05"),
        ("2026-01-05 23:30 -0500", "%Y-%m-%d %H:%M %z", "2026-01-05"),
    ],
)
def test_parse_days_keeps_the_calendar_date_written_in_the_value(value, date_format, day):
    parsed = parse_days([value, "2026-01-07T00:30:00+02:00"], date_format)[0]
    assert (None if pd.isna(parsed) else parsed.date().isoformat()) == day


def test_parse_days_with_mixed_offsets_in_a_format_keeps_each_value_s_date():
    values = ["2026-01-05 23:30 -0500", "2026-01-06 00:30 +0900", "nonsense"]
    parsed = parse_days(values, "%Y-%m-%d %H:%M %z")
    assert [None if pd.isna(p) else p.date() for p in parsed] == [date(2026, 1, 5), date(2026, 1, 6), None]


def test_a_file_failing_midway_leaves_no_partition_and_no_staging_behind(tmp_path, capsys):
    config = toy_config(tmp_path)
    folder = tmp_path / "exports"
    folder.mkdir()
    churn(40, seed=1).to_csv(folder / "a.csv", index=False)
    text = churn(40, seed=2).to_csv(index=False).encode()
    (folder / "b.csv").write_bytes(text + b"7,2026-01-02,5,pr\xfc,1.0,no,eu\n")  # Latin-1, not UTF-8

    code, _, err = run(capsys, "--config", str(config), "--source", f"{folder}/*.csv", "--date-column", "signed_up",
                       "--chunk-rows", "10")  # fmt: skip

    assert code == 1 and "b.csv is not valid utf-8" in err and "--encoding latin-1" in err
    assert not (tmp_path / "partitions").exists()  # a.csv had been staged whole: none of it was published

    code, out, err = run(capsys, "--config", str(config), "--source", f"{folder}/*.csv", "--date-column",
                         "signed_up", "--encoding", "latin-1")  # fmt: skip

    assert code == 0, err
    assert "wrote 81 rows" in out
    assert read(partition(config, date(2026, 1, 2)))[-1] == ["5", "prü", "1.0", "no", "7"]  # written as UTF-8
