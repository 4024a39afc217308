"""Ingest: the partitions of the window ending at D, parsed with the declared schema, as one snapshot.

Each partition is judged on its own before the window is: its structure (a file that is readable,
a header with every declared column, no duplicate names), its malformed rows, and, for D itself,
whether it holds enough usable rows. Malformed rows (wrong field count, a non-number in a numeric
column, no label, bytes that are not UTF-8) never reach the snapshot: they are written with their
line number and reason to ``quarantine.csv`` and counted, so rows in = kept + quarantined. A
partition with a structural problem has all its rows quarantined with that problem as the reason
and blocks the run, named as what it is (a missing or renamed column, a duplicate header, a
directory where a file should be) rather than as the null values it would cause.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import logging
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.artifacts import fingerprint_frame
from pipelines.core.config import IngestThresholds, Schema
from pipelines.core.context import RunContext
from pipelines.core.contracts import PipelineError, StageName, Status
from pipelines.core.outputs import SOURCE_DS, SOURCE_ROW, IngestOutput

log = logging.getLogger(__name__)

QUARANTINE_COLUMNS = ["ds", "line", "reason", "raw"]
_UNDECODABLE = "\ufffd"  # what bytes that are not UTF-8 decode to
_BOM = "\ufeff"


class IngestError(PipelineError):
    """The window cannot be ingested; the message lists each problem with its partition."""


def window_dates(ds: date, days: int) -> list[date]:
    """The ``days`` dates ending at ``ds`` (inclusive), oldest first."""
    return [ds - timedelta(days=k) for k in reversed(range(days))]


@dataclass
class Partition:
    """One day's parse: its rows, its quarantined rows, structural problems and warnings."""

    rows: pd.DataFrame
    quarantined: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    unexpected_columns: list[str] = field(default_factory=list)


def _header_problems(header: list[str], schema: Schema) -> tuple[list[str], list[str], list[str]]:
    """(problems, missing columns, unexpected columns) of a partition's header."""
    known = set(schema.columns) | set(schema.ignore) | set(schema.label.annotators)
    missing = [c for c in [*schema.columns, *schema.label.annotators] if c not in header]
    unexpected = [h for h in header if h not in known]
    problems = []
    for name in sorted({h for h in header if header.count(h) > 1}):
        places = [i + 1 for i, h in enumerate(header) if h == name]
        problems.append(f"duplicate header column {name!r} (positions {places})")
    for name in missing:
        guess = _close_match(name, unexpected)
        problems.append(
            f"column {name!r} is missing from the header" + (f" (renamed? the header has {guess!r})" if guess else "")
        )
    return problems, missing, unexpected


def _close_match(name: str, candidates: list[str]) -> str | None:
    """The header column most likely to be ``name`` renamed: same letters, containing it, or spelled alike."""
    key = name.lower()
    for same in (
        [c for c in candidates if c.lower() == key],
        [c for c in candidates if len(c) > 2 and (key in c.lower() or c.lower() in key)],
        difflib.get_close_matches(name, candidates, n=1, cutoff=0.6),
    ):
        if same:
            return same[0]
    return None


def parse_partition(text: str, schema: Schema, ds: date) -> Partition:
    """Parse one CSV partition (with a header row) into typed rows, quarantined rows and problems.

    A UTF-8 byte-order mark is stripped (and noted). With a structural problem in the header, every
    row is quarantined with that problem as its reason.
    """
    warnings = []
    if text.startswith(_BOM):
        text = text[1:]
        warnings.append("UTF-8 byte-order mark at the start of the file (stripped)")
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    problems, missing, unexpected = _header_problems(header, schema) if header else ([], [], [])
    position = {c: header.index(c) for c in [*schema.columns, *schema.label.annotators] if c in header}
    label = schema.label.name
    rows: list[dict[str, Any]] = []
    bad: list[list[Any]] = []
    for fields in reader:
        line = reader.line_num  # physical line: a quoted field may span several
        if not fields:
            continue
        if problems:
            reason: str | None = problems[0]
        else:
            reason, record = _parse_row(fields, len(header), position, schema)
            if reason is None and not record[label]:
                reason = f"{label}: label is missing"
        if reason:
            bad.append([ds.isoformat(), line, reason, ",".join(fields)])
            continue
        record[SOURCE_DS], record[SOURCE_ROW] = ds.isoformat(), line
        rows.append(record)
    frame = pd.DataFrame(rows, columns=[*schema.columns, *schema.label.annotators, SOURCE_DS, SOURCE_ROW])
    return Partition(
        _typed(frame, schema),
        pd.DataFrame(bad, columns=QUARANTINE_COLUMNS),
        problems,
        warnings,
        missing,
        unexpected,
    )


def _parse_row(
    fields: list[str], width: int, position: dict[str, int], schema: Schema
) -> tuple[str | None, dict[str, Any]]:
    if len(fields) != width:
        return f"expected {width} fields, got {len(fields)}", {}
    if any(_UNDECODABLE in f for f in fields):
        return "not valid UTF-8", {}
    record: dict[str, Any] = {}
    for feature in schema.features:
        raw = fields[position[feature.name]].strip()
        if feature.kind == "numeric" and raw:
            try:
                record[feature.name] = float(raw)
            except ValueError:
                return f"{feature.name}: not a number: {raw!r}", {}
        else:
            record[feature.name] = raw or None
    for name in [schema.label.name, *schema.label.annotators]:
        record[name] = fields[position[name]].strip()
    return None, record


def _typed(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    for name in schema.numeric:
        frame[name] = frame[name].astype("float64")
    for name in [*schema.categorical, schema.label.name, *schema.label.annotators, SOURCE_DS]:
        frame[name] = frame[name].astype("str")
    frame[SOURCE_ROW] = frame[SOURCE_ROW].astype("int64")
    return frame


def read_partition(path: Path, schema: Schema, day: date) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Read and parse one day's file; returns its rows, its quarantined rows and its metadata entry.

    The entry's ``status`` is ``read``, ``empty`` (no data rows), ``unreadable`` (not a file, or an
    OS error) or ``broken`` (a structural problem; see ``problems``).
    """
    entry: dict[str, Any] = {"ds": day.isoformat(), "path": str(path)}
    try:
        if not path.is_file():
            raise IsADirectoryError(f"{path} is a directory, not a file" if path.is_dir() else f"{path} is not a file")
        content = path.read_bytes()
    except OSError as exc:
        reason = str(exc) if isinstance(exc, IsADirectoryError) else f"cannot read {path}: {exc.strerror or exc}"
        entry.update(status="unreadable", rows=0, quarantined=0, problems=[reason], warnings=[])
        empty = pd.DataFrame(columns=[*schema.columns, *schema.label.annotators, SOURCE_DS, SOURCE_ROW])
        return _typed(empty, schema), pd.DataFrame(columns=QUARANTINE_COLUMNS), entry
    part = parse_partition(content.decode("utf-8", errors="replace"), schema, day)
    total = len(part.rows) + len(part.quarantined)
    status = "broken" if part.problems else ("read" if total else "empty")
    entry.update(
        status=status,
        sha256=hashlib.sha256(content).hexdigest(),
        rows=len(part.rows),
        quarantined=len(part.quarantined),
        problems=part.problems,
        warnings=part.warnings,
        missing_columns=part.missing_columns,
        unexpected_columns=part.unexpected_columns,
    )
    return part.rows, part.quarantined, entry


def judge_partitions(
    partitions: list[dict[str, Any]], ds: date, limits: IngestThresholds
) -> tuple[list[str], list[str]]:
    """(problems that block, warnings) from the window's partition entries.

    D's own partition must be readable and hold ``min_partition_rows`` usable rows; any partition
    with a structural problem or too many malformed rows blocks; days without a partition (or with
    an empty one) are tolerated up to ``max_missing_days``, days before the source began are not gaps.
    """
    problems, warnings = [], []
    today = ds.isoformat()
    gaps = []
    for p in partitions:
        where = f"ds={p['ds']}" + (" (the run's own day)" if p["ds"] == today else "")
        problems += [f"{where}: {reason}" for reason in p.get("problems", [])]
        warnings += [f"{where}: {note}" for note in p.get("warnings", [])]
        if p["status"] in ("missing", "empty") and p["ds"] != today:
            gaps.append(p)
        total = p.get("rows", 0) + p.get("quarantined", 0)
        if p["status"] == "read" and total and p["quarantined"] / total > limits.max_partition_quarantine_fraction:
            problems.append(
                f"{where}: {p['quarantined']} of {total} rows ({p['quarantined'] / total:.1%}) are malformed, "
                f"above max_partition_quarantine_fraction {limits.max_partition_quarantine_fraction:.1%}"
            )
    own = next(p for p in partitions if p["ds"] == today)
    if own["status"] == "missing":
        problems.insert(0, f"ds={today} (the run's own day): no partition at {own['path']}")
    elif own["status"] in ("read", "empty") and own["rows"] < limits.min_partition_rows:
        what = "the file has no data rows" if own["status"] == "empty" else f"{own['quarantined']} rows quarantined"
        problems.insert(
            0,
            f"ds={today} (the run's own day): {own['rows']} usable rows, fewer than min_partition_rows "
            f"{limits.min_partition_rows} ({what})",
        )
    if gaps:
        listed = ", ".join(f"{p['ds']} ({p['status']})" for p in gaps)
        message = f"{len(gaps)} day(s) of the window have no rows: {listed}"
        if len(gaps) > limits.max_missing_days:
            problems.append(f"{message}; more than max_missing_days {limits.max_missing_days}")
        else:
            warnings.append(f"{message} (tolerated: max_missing_days {limits.max_missing_days})")
    before = [p["ds"] for p in partitions if p["status"] == "before_source"]
    if before:
        warnings.append(
            f"{len(before)} day(s) of the window, {before[0]}..{before[-1]}, are before the source's first partition"
        )
    return problems, warnings


def _unexpected_summary(partitions: list[dict[str, Any]]) -> str | None:
    """One line for every column not in the config, across the window (logged once per run)."""
    seen = sorted({c for p in partitions for c in p.get("unexpected_columns", [])})
    if not seen:
        return None
    days = sum(bool(p.get("unexpected_columns")) for p in partitions)
    shown = ", ".join(seen[:10]) + (f" and {len(seen) - 10} more" if len(seen) > 10 else "")
    return f"{len(seen)} column(s) not in the config, ignored, in {days} partition(s): {shown}"


def ingest_window(ctx: RunContext) -> str:
    """Read the window's partitions and write the snapshot, the quarantine and metadata.

    Returns:
        The URI of the ingest output for D.

    Raises:
        IngestError: a partition is unusable (see ``judge_partitions``), or the malformed fraction of
            the window exceeds ``max_quarantine_fraction``; the evidence is written first, marked failed.
    """
    data, schema = ctx.config.data, ctx.config.data_schema
    limits = ctx.config.thresholds.ingest
    days = window_dates(ctx.ds, ctx.window)
    exists = {d: data.partition(d).exists() for d in days}
    if not exists[ctx.ds]:
        raise IngestError(f"no partition for {ctx.ds}: {data.partition(ctx.ds)} does not exist")
    source_start = days[0] if all(exists.values()) else data.first_day()
    frames, quarantined, partitions = [], [], []
    for day in days:
        path = data.partition(day)
        if not exists[day]:
            status = "before_source" if source_start and day < source_start else "missing"
            partitions.append({"ds": day.isoformat(), "path": str(path), "status": status, "rows": 0})
            continue
        rows, bad, entry = read_partition(path, schema, day)
        log.info("ingest %s: %s, %d rows, %d quarantined", day, entry["status"], entry["rows"], entry["quarantined"])
        frames.append(rows)
        quarantined.append(bad)
        partitions.append(entry)
    problems, warnings = judge_partitions(partitions, ctx.ds, limits)
    snapshot = pd.concat(frames, ignore_index=True)
    quarantine = pd.concat(quarantined, ignore_index=True)
    total = len(snapshot) + len(quarantine)
    fraction = len(quarantine) / total if total else 0.0
    if fraction > limits.max_quarantine_fraction:
        reasons = quarantine["reason"].value_counts().head(3).to_dict()
        problems.append(
            f"window: {len(quarantine)} of {total} rows ({fraction:.1%}) are malformed, above "
            f"max_quarantine_fraction {limits.max_quarantine_fraction:.1%}; most common reasons {reasons}"
        )
    unexpected = _unexpected_summary(partitions)
    if unexpected:
        log.info("ingest: %s", unexpected)
    for message in warnings:
        log.warning("ingest: %s", message)
    with ctx.open_stage(StageName.INGEST) as out:
        written = IngestOutput(out.path)
        snapshot.to_parquet(written.snapshot, index=False)
        quarantine.to_csv(written.quarantine, index=False)
        out.finish(
            fingerprint_frame(snapshot),
            status=Status.FAILED if problems else Status.SUCCEEDED,
            rows=len(snapshot),
            quarantined=len(quarantine),
            quarantined_fraction=round(fraction, 6),
            window_days=ctx.window,
            days_read=sum(p["status"] == "read" for p in partitions),
            problems=problems,
            warnings=warnings,
            unexpected_columns=unexpected,
            partitions=partitions,
        )
    if problems:
        raise IngestError(
            f"ingest of the window ending {ctx.ds} blocked ({len(problems)} problem(s)):\n  "
            + "\n  ".join(problems)
            + f"\nquarantined rows with their reasons: {IngestOutput(out.uri).quarantine}"
        )
    return out.uri
