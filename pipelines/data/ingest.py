"""Ingest: the partitions of the window ending at D, parsed with the declared schema, as one snapshot.

Malformed rows (wrong field count, a non-number in a numeric column, no label, bytes that are not
UTF-8) never reach the snapshot: they are written with their line number and reason to
``quarantine.csv`` and counted. A partition whose header lacks a declared column keeps its rows with
that column empty (and says so in the metadata), so validation can name the column instead of the
ingest guessing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.artifacts import fingerprint_frame
from pipelines.core.config import Schema
from pipelines.core.context import RunContext
from pipelines.core.contracts import PipelineError, StageName, Status
from pipelines.core.outputs import SOURCE_DS, SOURCE_ROW, IngestOutput

log = logging.getLogger(__name__)

QUARANTINE_COLUMNS = ["ds", "line", "reason", "raw"]
_UNDECODABLE = "\ufffd"  # what bytes that are not UTF-8 decode to


class IngestError(PipelineError):
    """The window cannot be ingested (no partition for D, or too many malformed rows)."""


def window_dates(ds: date, days: int) -> list[date]:
    """The ``days`` dates ending at ``ds`` (inclusive), oldest first."""
    return [ds - timedelta(days=k) for k in reversed(range(days))]


def parse_partition(text: str, schema: Schema, ds: date) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Parse one CSV partition (with a header row) into typed rows and quarantined rows.

    Returns:
        (rows, quarantined, info): rows has the schema's columns plus the source date and line;
        quarantined has ``QUARANTINE_COLUMNS``; info lists missing and unexpected columns.
    """
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    known = set(schema.columns) | set(schema.ignore)
    info = {
        "missing_columns": [c for c in schema.columns if c not in header],
        "unexpected_columns": [h for h in header if h not in known],
    }
    position = {c: header.index(c) for c in schema.columns if c in header}
    label = schema.label.name
    rows: list[dict[str, Any]] = []
    bad: list[list[Any]] = []
    for fields in reader:
        line = reader.line_num  # physical line: a quoted field may span several
        if not fields:
            continue
        reason, record = _parse_row(fields, len(header), position, schema)
        if reason is None and not record[label]:
            reason = f"{label}: label is missing"
        if reason:
            bad.append([ds.isoformat(), line, reason, ",".join(fields)])
            continue
        record[SOURCE_DS], record[SOURCE_ROW] = ds.isoformat(), line
        rows.append(record)
    frame = pd.DataFrame(rows, columns=[*schema.columns, SOURCE_DS, SOURCE_ROW])
    return _typed(frame, schema), pd.DataFrame(bad, columns=QUARANTINE_COLUMNS), info


def _parse_row(
    fields: list[str], width: int, position: dict[str, int], schema: Schema
) -> tuple[str | None, dict[str, Any]]:
    if len(fields) != width:
        return f"expected {width} fields, got {len(fields)}", {}
    if any(_UNDECODABLE in f for f in fields):
        return "not valid UTF-8", {}
    record: dict[str, Any] = {}
    for feature in schema.features:
        raw = fields[position[feature.name]].strip() if feature.name in position else ""
        if feature.kind == "numeric" and raw:
            try:
                record[feature.name] = float(raw)
            except ValueError:
                return f"{feature.name}: not a number: {raw!r}", {}
        else:
            record[feature.name] = raw or None
    label = schema.label.name
    record[label] = fields[position[label]].strip() if label in position else ""
    return None, record


def _typed(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    for name in schema.numeric:
        frame[name] = frame[name].astype("float64")
    for name in [*schema.categorical, schema.label.name, SOURCE_DS]:
        frame[name] = frame[name].astype("str")
    frame[SOURCE_ROW] = frame[SOURCE_ROW].astype("int64")
    return frame


def read_partition(path: Path, schema: Schema, day: date) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Parse one day's file; returns its rows, its quarantined rows and its metadata entry."""
    content = path.read_bytes()
    rows, bad, info = parse_partition(content.decode("utf-8", errors="replace"), schema, day)
    entry = {
        "ds": day.isoformat(),
        "path": str(path),
        "status": "read",
        "sha256": hashlib.sha256(content).hexdigest(),
        "rows": len(rows),
        "quarantined": len(bad),
        **info,
    }
    log.info("ingest %s: %d rows, %d quarantined %s", day, len(rows), len(bad), info)
    return rows, bad, entry


def ingest_window(ctx: RunContext) -> str:
    """Read the window's partitions and write the snapshot, the quarantine and metadata.

    Returns:
        The URI of the ingest output for D.

    Raises:
        IngestError: D's own partition is missing, or the malformed fraction exceeds
            ``thresholds.ingest.max_quarantine_fraction`` (the evidence is written first, marked failed).
    """
    data, schema = ctx.config.data, ctx.config.data_schema
    if not data.partition(ctx.ds).exists():
        raise IngestError(f"no partition for {ctx.ds}: {data.partition(ctx.ds)} does not exist")
    frames, quarantined, partitions = [], [], []
    for day in window_dates(ctx.ds, ctx.window):
        path = data.partition(day)
        if not path.exists():
            partitions.append({"ds": day.isoformat(), "path": str(path), "status": "missing"})
            continue
        rows, bad, entry = read_partition(path, schema, day)
        frames.append(rows)
        quarantined.append(bad)
        partitions.append(entry)
    snapshot = pd.concat(frames, ignore_index=True)
    quarantine = pd.concat(quarantined, ignore_index=True)
    total = len(snapshot) + len(quarantine)
    fraction = len(quarantine) / total if total else 0.0
    limit = ctx.config.thresholds.ingest.max_quarantine_fraction
    with ctx.open_stage(StageName.INGEST) as out:
        written = IngestOutput(out.path)
        snapshot.to_parquet(written.snapshot, index=False)
        quarantine.to_csv(written.quarantine, index=False)
        out.finish(
            fingerprint_frame(snapshot),
            status=Status.FAILED if fraction > limit else Status.SUCCEEDED,
            rows=len(snapshot),
            quarantined=len(quarantine),
            quarantined_fraction=round(fraction, 6),
            window_days=ctx.window,
            partitions=partitions,
        )
    if fraction > limit:
        reasons = quarantine["reason"].value_counts().head(3).to_dict()
        raise IngestError(
            f"{len(quarantine)} of {total} rows ({fraction:.1%}) are malformed, above "
            f"max_quarantine_fraction {limit:.1%}; most common reasons {reasons}; "
            f"see {IngestOutput(out.uri).quarantine}"
        )
    return out.uri
