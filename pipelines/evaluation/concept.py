"""Concept drift: does the live model still perform on the window's new labelled rows as it did offline?

Data drift (``pipelines.data.drift``) asks whether the features have moved; this asks whether the relation
between features and label has. The rows of the current window (train and test splits together) dated
after the live model's data date are new to it; earlier ones may have been in its training window. They
are scored with the live model, and its primary metric, with a bootstrap interval, is compared with what
the live model scored on its own test split when it was evaluated: ``test_<metric>`` on its MLflow run,
with the interval from the evaluation report logged to the same run.

The offline value is itself an estimate on a test split that is often much smaller than the new rows, so
it is compared as one: the interval of the difference (new minus offline) combines both intervals by
MOVER (Zou & Donner, 2008, "Construction of confidence limits about effect measures"), and concept drift
is declared only when that whole interval lies below ``-max_regression``. Treating the offline point as
exact would call a model drifted on every unlucky offline split. Without an offline interval on record
the offline value is taken as exact, and the report says so; without an offline value the verdict is
``unknown``, never a guess.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from pipelines.core.config import METRICS, Config, GatePolicy
from pipelines.core.contracts import ConceptVerdict
from pipelines.core.deployment_state import SlotRecord
from pipelines.core.outputs import SOURCE_DS, EvaluationOutput, TransformOutput
from pipelines.core.tracking import client
from pipelines.evaluation.metrics import assess, positives
from pipelines.model.scoring import score
from pipelines.model.signature import read_threshold

log = logging.getLogger(__name__)

SEED = 0  # fixed resamples: a re-run of D reports the same interval


@dataclass(frozen=True)
class OfflinePerformance:
    """What a model scored on its own test split when it was evaluated, and where that was read."""

    metrics: dict[str, float]
    intervals: dict[str, list[float] | None] = field(default_factory=dict)  # empty: not on record
    rows: int | None = None
    source: str = ""


def offline_performance(config: Config, mlflow_run_id: str | None) -> OfflinePerformance | None:
    """The ``test_<metric>`` values on a model's MLflow run, with the intervals of the evaluation report logged
    there; None if no metric is on record."""
    if not mlflow_run_id:
        return None
    from mlflow.exceptions import MlflowException

    mlflow_client, source = client(config), f"MLflow run {mlflow_run_id}"
    try:
        logged = mlflow_client.get_run(mlflow_run_id).data.metrics
    except MlflowException as exc:
        log.warning("concept drift: cannot read %s: %s", source, exc)
        return None
    metrics = {m: float(logged[f"test_{m}"]) for m in METRICS if f"test_{m}" in logged}
    if not metrics:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        evaluation = EvaluationOutput(tmp)
        try:
            mlflow_client.download_artifacts(mlflow_run_id, evaluation.report_path.name, tmp)
            candidate = evaluation.report()["overall"]["candidate"]
        except (MlflowException, OSError, ValueError, KeyError) as exc:
            log.warning("concept drift: no evaluation report on %s (%s): offline values taken as exact", source, exc)
            return OfflinePerformance(metrics, source=source)
    return OfflinePerformance(metrics, candidate.get("ci") or {}, candidate.get("n"), source)


def new_rows(window: pd.DataFrame, live_ds: str) -> pd.DataFrame:
    """The window's rows dated after ``live_ds`` (ISO dates compare as strings): the live model never saw them."""
    return window[window[SOURCE_DS].astype(str) > live_ds]


def judge(
    y: np.ndarray, p: np.ndarray, offline: OfflinePerformance | None, policy: GatePolicy, threshold: float = 0.5
) -> dict[str, Any]:
    """The verdict on scored rows (pure): every metric with its interval, and the rule on the primary one."""
    metric = policy.primary_metric
    current = assess(y, p, None, policy, seed=SEED, thresholds=(threshold, threshold))["candidate"]
    value, (low, high) = current[metric], current["ci"][metric]
    judged: dict[str, Any] = {"current": current, "value": value, "interval": [low, high]}
    reference = offline.metrics.get(metric) if offline else None
    if offline is None or reference is None:
        return {"verdict": ConceptVerdict.UNKNOWN, **judged, "difference": None}
    ref_low, ref_high = offline.intervals.get(metric) or (reference, reference)
    point = value - reference
    bounds = [
        point - math.hypot(value - low, ref_high - reference),
        point + math.hypot(high - value, reference - ref_low),
    ]
    drifted = bounds[1] < -policy.max_regression
    return {
        "verdict": ConceptVerdict.DRIFT if drifted else ConceptVerdict.STABLE,
        **judged,
        "offline_interval": [ref_low, ref_high] if offline.intervals.get(metric) else None,
        "difference": {"point": round(point, 6), "ci": [round(b, 6) for b in bounds]},
    }


def _span(days: list[str]) -> str:
    return days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"


def _message(who: str, report: dict[str, Any], judged: dict[str, Any], policy: GatePolicy) -> str:
    metric, (low, high) = report["metric"], judged["interval"]
    measured = (
        f"{who}'s {metric} on {report['rows']:,} rows from {_span(report['days'])} "
        f"is {judged['value']:.3f} [{low:.3f}, {high:.3f}]"
    )
    if judged["verdict"] is ConceptVerdict.UNKNOWN:
        source = report["offline_source"]
        missing = f"no test_{metric} on {source}" if source else "it has no MLflow run"
        return f"{measured}; its offline {metric} is unknown ({missing}): concept drift not judged"
    reference = report["offline"]["metrics"][metric]
    if judged["offline_interval"]:
        offline = f"{reference:.3f} [{judged['offline_interval'][0]:.3f}, {judged['offline_interval'][1]:.3f}] offline"
    else:
        offline = f"{reference:.3f} offline (its interval is not on record: taken as exact)"
    difference = judged["difference"]
    drifted = judged["verdict"] is ConceptVerdict.DRIFT
    return (
        f"{measured} vs {offline}; the difference {difference['point']:+.3f} "
        f"[{difference['ci'][0]:+.3f}, {difference['ci'][1]:+.3f}] is {'' if drifted else 'not '}wholly below "
        f"-{policy.max_regression}: {'concept drift' if drifted else 'stable'}"
    )


def concept_drift(
    window: pd.DataFrame,
    live: SlotRecord | None,
    offline: OfflinePerformance | None,
    config: Config,
    window_rows: int | None = None,
) -> dict[str, Any]:
    """Concept drift of the live model on ``window``'s rows dated after its data date.

    Args:
        window: the current window's labelled rows with their ``SOURCE_DS`` (or only those after the live model's
            data date, with the window's size in ``window_rows``).
        live: the live model (None before the first promotion).
        offline: its performance on its own test split (None if not on record).
        config: the schema (label) and the gate's policy (metric, confidence, margin, minimum rows).
        window_rows: the window's row count when ``window`` holds only the rows after the live model's data.

    Returns:
        A JSON-ready report: ``verdict`` (a ``ConceptVerdict``), a one-sentence ``message``, the rows and
        days used, the offline and current values with their intervals, their difference, and the rule.
    """
    policy, label = config.thresholds.gate, config.data_schema.label
    metric = policy.primary_metric
    if live is None:
        return {"verdict": ConceptVerdict.NO_LIVE_MODEL, "message": "no live model: concept drift not checked"}
    rows = new_rows(window, live.ds)
    y = positives(rows, config.data_schema)  # class ids for a multi-class label
    report: dict[str, Any] = {
        "metric": metric,
        "live_version": live.version,
        "live_ds": live.ds,
        "window_rows": len(window) if window_rows is None else window_rows,
        "rows": len(rows),
        "positives": None if label.is_multiclass else int(y.sum()),
        "days": sorted(rows[SOURCE_DS].astype(str).unique()),
        "offline": asdict(offline) if offline else None,
        "offline_source": f"MLflow run {live.mlflow_run_id}" if live.mlflow_run_id else None,
        "confidence": policy.confidence,
        "rule": (
            f"concept drift if the {policy.confidence:.0%} interval of ({metric} on the new rows - the live "
            f"model's offline {metric}) lies below -{policy.max_regression}; MOVER combines the bootstrap "
            f"interval with the offline one (the offline value is taken as exact if its interval is not on record)"
        ),
    }
    who = f"live model {live.version}"
    if len(rows) < policy.min_test_rows:
        message = (
            f"only {len(rows):,} of the window's {report['window_rows']:,} rows are dated after {who}'s data "
            f"({live.ds}), need >= {policy.min_test_rows}: concept drift not judged"
        )
        return {"verdict": ConceptVerdict.INSUFFICIENT_DATA, "message": message, **report}
    if len(np.unique(y)) < 2:
        held = f"class {label.classes[y[0]]!r}" if label.is_multiclass else f"{report['positives']:,} positive"
        message = (
            f"the {len(rows):,} rows after {who}'s data ({live.ds}) hold one class only "
            f"({held}): concept drift not judged"
        )
        return {"verdict": ConceptVerdict.INSUFFICIENT_DATA, "message": message, **report}
    scores = score(live.model_uri, rows, config.data_schema)
    judged = judge(y, scores, offline, policy, read_threshold(live.model_uri))
    return {"verdict": judged["verdict"], "message": _message(who, report, judged, policy), **report, **judged}


def check_concept_drift(config: Config, transformed: TransformOutput, live: SlotRecord | None) -> dict[str, Any]:
    """The concept-drift report for the current window (both splits), read from the transform output."""
    if live is None:
        return concept_drift(pd.DataFrame(), None, None, config)
    # Only the rows the live model never saw are read: memory grows with the days since its data, not the window.
    columns, after = [*config.data_schema.columns, SOURCE_DS], [(SOURCE_DS, ">", live.ds)]
    paths = (transformed.train_raw, transformed.test_raw)
    window = pd.concat([pd.read_parquet(path, columns=columns, filters=after) for path in paths], ignore_index=True)
    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in paths)
    report = concept_drift(window, live, offline_performance(config, live.mlflow_run_id), config, window_rows=rows)
    log.info("concept drift: %s", report["message"])
    return report
