"""Ingest: the partitions of the window ending at D, parsed with the declared schema, as one snapshot.

Each partition is read by ``partitions.read_partition`` and judged on its own before the window
is: its structure (a file that is readable, a header with every declared column, no duplicate
names), its malformed share, and, for D itself, whether it holds enough usable rows; days without
rows are tolerated up to a limit. Malformed rows never reach the snapshot: they are written with
their line number and reason to ``quarantine.csv`` and counted. A partition with a structural
problem blocks the run, named as what it is (a missing or renamed column, a duplicate header, a
directory where a file should be) rather than as the null values it would cause.

The window streams: each partition is parsed and appended to ``snapshot.parquet`` as its own row group
(one Arrow schema from the config for all of them) and its malformed rows to ``quarantine.csv``; only its
metadata entry is kept to judge the window by, so memory holds one partition at a time, whatever the
window's size.
"""

from __future__ import annotations

import logging
from collections import Counter
from contextlib import closing
from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.core.artifacts import FrameDigest
from pipelines.core.config import IngestThresholds, Schema
from pipelines.core.context import RunContext
from pipelines.core.contracts import PipelineError, StageName, Status
from pipelines.core.outputs import IngestOutput
from pipelines.data.partitions import QUARANTINE_COLUMNS, read_partition, snapshot_schema, window_dates

log = logging.getLogger(__name__)


class IngestError(PipelineError):
    """The window cannot be ingested; the message lists each problem with its partition."""


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


class _WindowWriter:
    """Appends partition after partition to the snapshot (a row group each) and the quarantine CSV.

    The fingerprint is ``fingerprint_frame`` of the whole window, computed as it streams (``FrameDigest``).
    """

    def __init__(self, out: IngestOutput, schema: Schema) -> None:
        self._snapshot = pq.ParquetWriter(out.snapshot, snapshot_schema(schema))
        self._quarantine = out.quarantine
        pd.DataFrame(columns=QUARANTINE_COLUMNS).to_csv(self._quarantine, index=False)
        self._digest = FrameDigest()
        self.rows = 0
        self.reasons: Counter[str] = Counter()

    def close(self) -> None:
        """Write the snapshot's footer."""
        self._snapshot.close()

    @property
    def quarantined(self) -> int:
        """Rows quarantined so far."""
        return self.reasons.total()

    def append(self, rows: pd.DataFrame, quarantined: pd.DataFrame) -> None:
        """Append one partition's typed rows and quarantined rows."""
        self._digest.update(rows)
        self._snapshot.write_table(pa.Table.from_pandas(rows, schema=self._snapshot.schema, preserve_index=False))
        quarantined.to_csv(self._quarantine, mode="a", header=False, index=False)
        self.rows += len(rows)
        self.reasons.update(quarantined["reason"])

    def fingerprint(self) -> str:
        """The content fingerprint of every row appended, in order."""
        return self._digest.hexdigest()


def _stream_window(ctx: RunContext, writer: _WindowWriter) -> list[dict[str, Any]]:
    """Read each partition of the window in turn into ``writer``; returns one metadata entry per day.

    Raises:
        IngestError: D has no partition (before anything is read).
    """
    data, schema = ctx.config.data, ctx.config.data_schema
    days = window_dates(ctx.ds, ctx.window)
    exists = {d: data.partition(d).exists() for d in days}
    if not exists[ctx.ds]:
        raise IngestError(f"no partition for {ctx.ds}: {data.partition(ctx.ds)} does not exist")
    source_start = days[0] if all(exists.values()) else data.first_day()
    partitions = []
    for day in days:
        path = data.partition(day)
        if not exists[day]:
            status = "before_source" if source_start and day < source_start else "missing"
            partitions.append({"ds": day.isoformat(), "path": str(path), "status": status, "rows": 0})
            continue
        rows, bad, entry = read_partition(path, schema, day)
        log.info("ingest %s: %s, %d rows, %d quarantined", day, entry["status"], entry["rows"], entry["quarantined"])
        writer.append(rows, bad)
        partitions.append(entry)
    return partitions


def ingest_window(ctx: RunContext) -> str:
    """Read the window's partitions and write the snapshot, the quarantine and metadata.

    Returns:
        The URI of the ingest output for D.

    Raises:
        IngestError: a partition is unusable (see ``judge_partitions``), or the malformed fraction of
            the window exceeds ``max_quarantine_fraction``; the evidence is written first, marked failed.
    """
    limits = ctx.config.thresholds.ingest
    with ctx.open_stage(StageName.INGEST) as out:
        with closing(_WindowWriter(IngestOutput(out.path), ctx.config.data_schema)) as writer:
            partitions = _stream_window(ctx, writer)
        problems, warnings = judge_partitions(partitions, ctx.ds, limits)
        total = writer.rows + writer.quarantined
        fraction = writer.quarantined / total if total else 0.0
        if fraction > limits.max_quarantine_fraction:
            reasons = dict(writer.reasons.most_common(3))
            problems.append(
                f"window: {writer.quarantined} of {total} rows ({fraction:.1%}) are malformed, above "
                f"max_quarantine_fraction {limits.max_quarantine_fraction:.1%}; most common reasons {reasons}"
            )
        unexpected = _unexpected_summary(partitions)
        if unexpected:
            log.info("ingest: %s", unexpected)
        for message in warnings:
            log.warning("ingest: %s", message)
        out.finish(
            writer.fingerprint(),
            status=Status.FAILED if problems else Status.SUCCEEDED,
            rows=writer.rows,
            quarantined=writer.quarantined,
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
