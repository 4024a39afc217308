"""Ingest: the partitions of the window ending at D, parsed with the declared schema, as one snapshot.

Each partition is read by ``partitions.read_partition`` and judged on its own before the window
is: its structure (a file that is readable, a header with every declared column, no duplicate
names), its malformed share, and, for D itself, whether it holds enough usable rows; days without
rows are tolerated up to a limit. Malformed rows never reach the snapshot: they are written with
their line number and reason to ``quarantine.csv`` and counted. A partition with a structural
problem blocks the run, named as what it is (a missing or renamed column, a duplicate header, a
directory where a file should be) rather than as the null values it would cause.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pandas as pd

from pipelines.core.artifacts import fingerprint_frame
from pipelines.core.config import IngestThresholds
from pipelines.core.context import RunContext
from pipelines.core.contracts import PipelineError, StageName, Status
from pipelines.core.outputs import IngestOutput
from pipelines.data.partitions import read_partition, window_dates

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
