"""The drift stage: the new snapshot against the data the LIVE model was trained on, feature by feature.

The reference comes from the deployment state, never from "the previous run", so after a rollback
the drift check compares against the model that is really serving. How each feature is judged, and
the dataset by the share that drifted, is ``pipelines.data.drift_compare`` (pure, shared with
monitoring); this stage reads the snapshot, the reference and the past partitions that calibrate the
thresholds, and writes ``drift.json`` and ``drift.html``. The snapshot and the reference are read in batches
(only the features and the source date), so neither is ever one DataFrame.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from pipelines.core.artifacts import fingerprint_json, write_json_atomic
from pipelines.core.context import RunContext
from pipelines.core.contracts import DriftVerdict, StageName
from pipelines.core.deployment_state import live_version, state_path
from pipelines.core.outputs import SNAPSHOT_BATCH_ROWS, SOURCE_DS, DriftOutput, IngestOutput, require
from pipelines.data.drift_compare import compare, psi, summarize
from pipelines.data.drift_report import render_html
from pipelines.data.partitions import read_partition

__all__ = ["check_drift", "compare", "psi", "read_history", "summarize"]

log = logging.getLogger(__name__)


def read_history(ctx: RunContext) -> tuple[pd.DataFrame | None, list[dict[str, Any]]]:
    """The daily partitions before the window, for calibration: at most ``calibration.history_days`` of them.

    Missing days are skipped; a partition that is not usable is skipped and listed. Nothing is written:
    this is evidence for a threshold, not data to train on. Reading is the cost, so ``history_days`` bounds it.

    Returns:
        (rows with the features and ``SOURCE_DS``, or None; one entry per partition found).
    """
    first = ctx.ds - timedelta(days=ctx.window - 1)
    frames, found = [], []
    for back in range(ctx.config.thresholds.drift.calibration.history_days, 0, -1):
        day = first - timedelta(days=back)
        path = ctx.config.data.partition(day)
        if not path.exists():
            continue
        rows, _, entry = read_partition(path, ctx.config.data_schema, day)
        found.append({k: entry[k] for k in ("ds", "status", "rows") if k in entry})
        if entry["status"] == "read" and len(rows):
            frames.append(rows)
    return (pd.concat(frames, ignore_index=True) if frames else None), found


def _read_batches(path: str, columns: list[str]) -> Iterator[pd.DataFrame]:
    """The rows of a Parquet file (the reference) in batches, only those of ``columns`` it has; one empty frame
    for a file without rows."""
    parquet = pq.ParquetFile(path)
    present = [c for c in columns if c in parquet.schema_arrow.names]
    for batch in parquet.iter_batches(batch_size=SNAPSHOT_BATCH_ROWS, columns=present):
        yield batch.to_pandas()
    if not parquet.metadata.num_rows:
        yield parquet.read(columns=present).to_pandas()


def check_drift(ctx: RunContext, snapshot_uri: str) -> str:
    """Compare the snapshot with the live model's training data; write ``drift.json`` and ``drift.html``.

    Before the first promotion the verdict is "no_reference", with the reason. The verdict and the
    drifted features are logged (a warning for "warn" and "drift"), so they show in the task's log.
    """
    snapshot = require(IngestOutput(snapshot_uri))
    live = live_version(ctx.config)
    if live is None:
        report: dict[str, Any] = {
            "verdict": DriftVerdict.NO_REFERENCE,
            "reason": f"no live model in {state_path(ctx.config)}: nothing to compare with",
            "drifted_features": [],
            "features": {},
        }
        report["summary"] = summarize(report)
    else:
        history, found = read_history(ctx)
        columns = [*(f.name for f in ctx.config.data_schema.features), SOURCE_DS]
        report = compare(
            _read_batches(live.reference_uri, columns),
            snapshot.iter_snapshot(columns=columns),
            ctx.config.data_schema,
            ctx.config.thresholds.drift,
            history,
        )
        report["reference"] = {"version": live.version, "uri": live.reference_uri}
        report["calibration"]["partitions"] = found
    with ctx.open_stage(StageName.DRIFT) as out:
        written = DriftOutput(out.path)
        write_json_atomic(written.report_path, report)
        written.html_path.write_text(render_html(report), encoding="utf-8")
        out.finish(fingerprint_json(report), inputs={"snapshot": snapshot}, verdict=report["verdict"])
    alarming = report["verdict"] in (DriftVerdict.WARN, DriftVerdict.DRIFT)
    log.log(logging.WARNING if alarming else logging.INFO, "drift %s", report["summary"])
    log.info("drift report: %s", DriftOutput(out.uri).html_path)
    return out.uri
