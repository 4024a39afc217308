"""Drift: the new snapshot against the data the LIVE model was trained on, feature by feature.

The reference comes from the deployment state, never from "the previous run", so after a rollback
the drift check compares against the model that is really serving. The statistic is the population
stability index over the reference's quantile bins (numeric) or categories (categorical), with
missing values as a bin of their own; too few rows on either side gives "insufficient_data" rather
than a verdict.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.artifacts import fingerprint_json, write_json_atomic
from pipelines.core.config import DriftThresholds, Feature, Schema
from pipelines.core.context import RunContext
from pipelines.core.contracts import DriftVerdict, StageName
from pipelines.core.deployment_state import live_version, state_path
from pipelines.core.outputs import DriftOutput, IngestOutput, require

log = logging.getLogger(__name__)

_EPS = 1e-4


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index between two vectors of bin proportions."""
    ref = np.clip(reference, _EPS, None)
    cur = np.clip(current, _EPS, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _proportions(reference: pd.Series, current: pd.Series, feature: Feature, bins: int) -> tuple[Any, Any]:
    if feature.kind == "numeric":
        edges = np.unique(np.nanquantile(reference.to_numpy(dtype=float), np.linspace(0, 1, bins + 1)[1:-1]))
        ref_codes = np.where(reference.isna(), -1, np.searchsorted(edges, reference, side="right"))
        cur_codes = np.where(current.isna(), -1, np.searchsorted(edges, current, side="right"))
        labels = np.arange(-1, len(edges) + 1)
    else:
        ref_codes = reference.fillna("<missing>").to_numpy()
        cur_codes = current.fillna("<missing>").to_numpy()
        labels = np.union1d(ref_codes, cur_codes)
    ref_counts = pd.Series(ref_codes).value_counts().reindex(labels, fill_value=0).to_numpy()
    cur_counts = pd.Series(cur_codes).value_counts().reindex(labels, fill_value=0).to_numpy()
    return ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()


def compare(
    reference: pd.DataFrame, current: pd.DataFrame, schema: Schema, thresholds: DriftThresholds
) -> dict[str, Any]:
    """Per-feature PSI and verdicts, and the overall verdict ("drift" if any feature drifted)."""
    features = {}
    for feature in schema.features:
        ref, cur = reference[feature.name], current[feature.name]
        entry: dict[str, Any] = {"kind": feature.kind, "reference_rows": len(ref), "current_rows": len(cur)}
        if min(len(ref), len(cur)) < thresholds.min_rows:
            entry.update(psi=None, verdict=DriftVerdict.INSUFFICIENT_DATA)
        else:
            value = psi(*_proportions(ref, cur, feature, thresholds.bins))
            entry.update(
                psi=round(value, 6), verdict=DriftVerdict.DRIFT if value > thresholds.psi else DriftVerdict.STABLE
            )
        features[feature.name] = entry
    drifted = sorted(n for n, e in features.items() if e["verdict"] == DriftVerdict.DRIFT)
    verdict = DriftVerdict.DRIFT if drifted else DriftVerdict.STABLE
    if not drifted and all(e["verdict"] == DriftVerdict.INSUFFICIENT_DATA for e in features.values()):
        verdict = DriftVerdict.INSUFFICIENT_DATA
    return {
        "verdict": verdict,
        "drifted_features": drifted,
        "psi_threshold": thresholds.psi,
        "features": features,
    }


def check_drift(ctx: RunContext, snapshot_uri: str) -> str:
    """Compare the snapshot with the live model's training data and write the drift report.

    Before the first promotion the verdict is "no_reference", with the reason.
    """
    snapshot = require(IngestOutput(snapshot_uri))
    live = live_version(ctx.config)
    if live is None:
        report = {
            "verdict": DriftVerdict.NO_REFERENCE,
            "reason": f"no live model in {state_path(ctx.config)}: nothing to compare with",
            "drifted_features": [],
            "features": {},
        }
    else:
        report = compare(
            pd.read_parquet(live.reference_uri),
            snapshot.read_snapshot(),
            ctx.config.data_schema,
            ctx.config.thresholds.drift,
        )
        report["reference"] = {"version": live.version, "uri": live.reference_uri}
    with ctx.open_stage(StageName.DRIFT) as out:
        write_json_atomic(DriftOutput(out.path).report_path, report)
        out.finish(fingerprint_json(report), inputs={"snapshot": snapshot}, verdict=report["verdict"])
    log.info("drift verdict %s %s", report["verdict"], report["drifted_features"])
    return out.uri
