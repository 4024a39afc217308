"""Classification metrics with bootstrap intervals, overall and per slice (pure: no I/O).

Metrics (accuracy, precision, recall, F1, ROC AUC, confusion matrix) come with a percentile-bootstrap
confidence interval, and the candidate-minus-live difference comes from the SAME resamples (a paired
bootstrap), which is what the gate decides on. Slices smaller than ``min_slice_size`` get point
estimates only, marked insufficient.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.config import METRICS, Config, GatePolicy, Schema

THRESHOLD = 0.5
MISSING = "missing"


def batched_metrics(y: np.ndarray, p: np.ndarray, threshold: float = THRESHOLD) -> dict[str, np.ndarray]:
    """Metrics for each row of ``y``/``p`` (shape [batches, n]), positive at ``p >= threshold``; NaN where undefined."""
    from scipy.stats import rankdata

    pred = p >= threshold
    pos = y == 1
    tp = np.sum(pred & pos, axis=1).astype(float)
    fp = np.sum(pred & ~pos, axis=1).astype(float)
    fn = np.sum(~pred & pos, axis=1).astype(float)
    n_pos, n = pos.sum(axis=1).astype(float), float(y.shape[1])
    n_neg = n - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(n_pos > 0, tp / n_pos, np.nan)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        ranks = rankdata(p, axis=1)
        auc = (np.sum(np.where(pos, ranks, 0.0), axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc = np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)
    accuracy = (tp + (n_neg - fp)) / n
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1, "roc_auc": auc}


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float = THRESHOLD) -> dict[str, Any]:
    """Point metrics and confusion matrix ``[[tn, fp], [fn, tp]]`` at ``threshold``."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    values = {k: _clean(v[0]) for k, v in batched_metrics(y[None, :], p[None, :], threshold).items()}
    pred = p >= threshold
    tn, fp = int(np.sum(~pred & (y == 0))), int(np.sum(pred & (y == 0)))
    fn, tp = int(np.sum(~pred & (y == 1))), int(np.sum(pred & (y == 1)))
    return {**values, "confusion_matrix": [[tn, fp], [fn, tp]], "n": int(len(y)), "positives": int(y.sum())}


def _clean(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 6)


def _share_below(samples: np.ndarray, bound: float) -> float | None:
    samples = samples[~np.isnan(samples)]
    return round(float(np.mean(samples < bound)), 6) if len(samples) else None


def _interval(samples: np.ndarray, confidence: float) -> list[float] | None:
    samples = samples[~np.isnan(samples)]
    if len(samples) == 0:
        return None
    alpha = (1 - confidence) / 2
    return [round(float(np.quantile(samples, alpha)), 6), round(float(np.quantile(samples, 1 - alpha)), 6)]


def assess(
    y: np.ndarray,
    candidate: np.ndarray,
    live: np.ndarray | None,
    policy: GatePolicy,
    seed: int = 0,
    min_rows: int = 1,
    margin: float | None = None,
    thresholds: tuple[float, float] = (THRESHOLD, THRESHOLD),
) -> dict[str, Any]:
    """Metrics with bootstrap intervals for the candidate (and live), plus paired differences.

    With fewer than ``min_rows`` rows only point estimates are given, marked ``sufficient: False``.
    Each difference also carries ``below_margin``: the share of resamples in which the candidate
    trails live by more than ``margin`` (default ``policy.max_regression``), the bootstrap p-value
    the gate corrects across slices.
    """
    y = np.asarray(y, dtype=int)
    result: dict[str, Any] = {"candidate": classification_metrics(y, candidate, thresholds[0])}
    if live is not None:
        result["live"] = classification_metrics(y, live, thresholds[1])
    if len(y) < max(min_rows, 1):
        result["sufficient"] = False
        return result
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(policy.bootstrap_samples, len(y)))
    boot_c = batched_metrics(y[idx], np.asarray(candidate)[idx], thresholds[0])
    result["sufficient"] = True
    result["candidate"]["ci"] = {m: _interval(boot_c[m], policy.confidence) for m in METRICS}
    if live is not None:
        boot_l = batched_metrics(y[idx], np.asarray(live)[idx], thresholds[1])
        result["live"]["ci"] = {m: _interval(boot_l[m], policy.confidence) for m in METRICS}
        margin = policy.max_regression if margin is None else margin
        result["difference"] = {
            m: {
                "point": _diff(result["candidate"][m], result["live"][m]),
                "ci": _interval(boot_c[m] - boot_l[m], policy.confidence),
                "below_margin": _share_below(boot_c[m] - boot_l[m], -margin),
                "margin": margin,
            }
            for m in METRICS
        }
    return result


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 6)


def slice_keys(df: pd.DataFrame, features: list[str], schema: Schema) -> pd.Series:
    """Each row's group within a slice, e.g. ``sex=Female, race=Black``; numerics by ``slice_bins``."""
    parts = []
    for name in features:
        feature = schema.feature(name)
        if feature.kind == "numeric":
            edges = feature.slice_bins or []
            labels = [f"<{edges[0]:g}"] + [f"{a:g}-{b:g}" for a, b in zip(edges, edges[1:], strict=False)]
            labels.append(f">={edges[-1]:g}")
            codes = np.searchsorted(edges, df[name].to_numpy(dtype=float), side="right")
            values = pd.Series(np.array(labels, dtype=object)[codes], index=df.index)
            values[df[name].isna()] = MISSING
        else:
            values = df[name].astype(object).where(df[name].notna(), MISSING)
        parts.append(f"{name}=" + values.astype(str))
    key = parts[0]
    for part in parts[1:]:
        key = key + ", " + part
    return key


def on_threshold(p: np.ndarray, own: float, target: float) -> np.ndarray:
    """Scores moved monotonically (piecewise linearly) so that ``own`` lands on ``target``: at ``target`` they
    give the predictions they gave at ``own``, and the same ranking (ROC AUC). Lets a live model with its own
    threshold be audited beside the candidate at the candidate's."""
    p = np.asarray(p, dtype=float)
    return np.where(p < own, p * target / own, target + (p - own) * (1 - target) / (1 - own))


def positives(frame: pd.DataFrame, schema: Schema) -> np.ndarray:
    """1 where the row's label is the positive class, else 0."""
    return (frame[schema.label.name] == schema.label.positive).to_numpy(dtype=int)


def evaluate_frame(
    test: pd.DataFrame,
    candidate: np.ndarray,
    live: np.ndarray | None,
    config: Config,
    train_positive_rate: float,
    thresholds: tuple[float, float] = (THRESHOLD, THRESHOLD),
) -> dict[str, Any]:
    """The whole evaluation report for scored test rows (pure: no I/O); ``thresholds`` are the candidate's
    and the live model's decision thresholds."""
    schema, policy = config.data_schema, config.thresholds.gate
    y = positives(test, schema)
    majority = int(train_positive_rate >= 0.5)
    report: dict[str, Any] = {
        "test_rows": len(y),
        "baseline": {
            "description": f"always predict the training majority class ({majority})",
            "accuracy": round(float(np.mean(y == majority)), 6) if len(y) else None,
            "roc_auc": 0.5,
        },
        "overall": assess(y, candidate, live, policy, thresholds=thresholds),
        "slices": {},
        "decision_thresholds": {"candidate": thresholds[0], "live": thresholds[1] if live is not None else None},
    }
    for features in config.slices:
        name = " x ".join(features)
        keys = slice_keys(test, features, schema)
        groups = {}
        for i, group in enumerate(sorted(keys.unique())):
            mask = (keys == group).to_numpy()
            live_part = None if live is None else live[mask]
            groups[group] = assess(
                y[mask],
                candidate[mask],
                live_part,
                policy,
                i + 1,
                policy.min_slice_size,
                policy.max_slice_regression,
                thresholds,
            )
        report["slices"][name] = groups
    return report
