"""Classification metrics with bootstrap intervals, overall and per slice (pure: no I/O).

Metrics (accuracy, precision, recall, F1, ROC AUC, confusion matrix) come with a percentile-bootstrap
confidence interval, and the candidate-minus-live difference comes from the SAME resamples (a paired
bootstrap), which is what the gate decides on. Slices smaller than ``min_slice_size`` get point
estimates only, marked insufficient.

Each slice group is resampled on its own rows (group ``i`` of a slice, in name order, with seed ``i + 1``;
the overall rows with seed 0): resample ``b`` of a group draws the rows
``default_rng(seed).integers(0, n, (resamples, n))[b]`` of it. Those draws are counted, not gathered: the
metrics of every group of a slice, under every resample, come from per-cell counts over rows sorted once
(``resampling``), so a slice costs time linear in its rows and memory bounded by a chunk of resamples, and
the figures equal those of sorting every resample (``batched_metrics``, kept as that direct reference).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.config import METRICS, Config, Feature, GatePolicy, Schema
from pipelines.evaluation.multiclass import (
    LOG_LOSS,
    PER_CLASS,
    label_ids,
    resample_weights,
    score_rows,
    weighted_metrics,
)
from pipelines.evaluation.resampling import CELL_BUDGET, RankedGroups, Tallies, chunk_rows, draws, pack, unpack

THRESHOLD = 0.5
MISSING = "missing"


def batched_metrics(y: np.ndarray, p: np.ndarray, threshold: float = THRESHOLD) -> dict[str, np.ndarray]:
    """Metrics for each row of ``y``/``p`` (shape [batches, n]), positive at ``p >= threshold``; NaN where undefined.

    The direct computation (ranks every row); the evaluation counts instead (``rates`` of ``resampling``
    tallies), which gives the same figures in linear time.
    """
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


def rates(t: Tallies) -> dict[str, np.ndarray]:
    """METRICS from per-group tallies (any shape), NaN where undefined; precision and F1 are 0 without any
    predicted (or actual) positive, as scikit-learn's with ``zero_division=0``."""
    n, n_pos = t.size.astype(float), t.positives.astype(float)
    tp, selected = t.true_positives.astype(float), t.selected.astype(float)
    n_neg, fp = n - n_pos, selected - tp
    fn = n_pos - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "accuracy": np.where(n > 0, (tp + n_neg - fp) / n, np.nan),
            "precision": np.where(selected > 0, tp / selected, 0.0),
            "recall": np.where(n_pos > 0, tp / n_pos, np.nan),
            "f1": np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0),
            "roc_auc": np.where((n_pos > 0) & (n_neg > 0), t.wins2 / (2 * n_pos * n_neg), np.nan),
        }


def _summary(t: Tallies, values: dict[str, np.ndarray], g: int) -> dict[str, Any]:
    """Group ``g``'s point metrics and confusion matrix ``[[tn, fp], [fn, tp]]`` from point tallies [1, groups]."""
    n, pos, sel, tp = (int(a[0, g]) for a in (t.size, t.positives, t.selected, t.true_positives))
    fp = sel - tp
    return {
        **{m: _clean(values[m][0, g]) for m in METRICS},
        "confusion_matrix": [[n - pos - fp, fp], [pos - tp, tp]],
        "n": n,
        "positives": pos,
    }


def classification_metrics(y: np.ndarray, p: np.ndarray, threshold: float = THRESHOLD) -> dict[str, Any]:
    """Point metrics and confusion matrix ``[[tn, fp], [fn, tp]]`` at ``threshold``; for probabilities
    [rows, classes] the multi-class summary (``multiclass_summary``, no threshold)."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    if p.ndim == 2:
        return multiclass_summary(weighted_metrics(np.ones((1, len(y))), y, p), 0, _class_names(p.shape[1]))
    point = RankedGroups.build(np.zeros(len(y), dtype=np.int64), 1, y, p, threshold).point()
    return _summary(point, rates(point), 0)


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
    codes = np.zeros(len(y), dtype=np.int64)
    return assess_groups(y, candidate, live, codes, 1, policy, [seed], min_rows, margin, thresholds)[0]


def assess_groups(
    y: np.ndarray,
    candidate: np.ndarray,
    live: np.ndarray | None,
    codes: np.ndarray,
    groups: int,
    policy: GatePolicy,
    seeds: Sequence[int],
    min_rows: int = 1,
    margin: float | None = None,
    thresholds: tuple[float, float] = (THRESHOLD, THRESHOLD),
    budget: int = CELL_BUDGET,
) -> list[dict[str, Any]]:
    """``assess`` of every group at once: group ``g`` (the rows where ``codes == g``) on its own, seed ``seeds[g]``.

    Equal to calling ``assess`` on each group's rows, in time linear in the rows and with about ``budget``
    drawn rows in memory at a time (see the module docstring). Probabilities [rows, classes] (a multi-class
    label) are assessed by ``assess_multiclass_groups`` on the same draws; ``thresholds`` do not apply there.
    """
    y, codes = np.asarray(y, dtype=int), np.asarray(codes, dtype=np.int64)
    if np.ndim(candidate) == 2:
        return assess_multiclass_groups(y, candidate, live, codes, groups, policy, seeds, min_rows, margin, budget)
    scored = {"candidate": (candidate, thresholds[0])}
    if live is not None:
        scored["live"] = (live, thresholds[1])
    layouts = {s: RankedGroups.build(codes, groups, y, p, cut) for s, (p, cut) in scored.items()}
    points = {s: layout.point() for s, layout in layouts.items()}
    values = {s: rates(point) for s, point in points.items()}
    sizes = np.bincount(codes, minlength=groups)
    enough = [g for g in range(groups) if sizes[g] >= max(min_rows, 1)]
    samples = _resampled(layouts, codes, sizes, enough, seeds, policy.bootstrap_samples, budget) if enough else {}
    margin = policy.max_regression if margin is None else margin
    results = []
    for g in range(groups):
        result: dict[str, Any] = {s: _summary(points[s], values[s], g) for s in scored}
        if g not in samples.get("candidate", {}):
            result["sufficient"] = False
            results.append(result)
            continue
        result["sufficient"] = True
        boot = {s: samples[s][g] for s in scored}
        for s in scored:
            result[s]["ci"] = {m: _interval(boot[s][m], policy.confidence) for m in METRICS}
        if live is not None:
            result["difference"] = paired_difference(result, boot, policy.confidence, margin)
        results.append(result)
    return results


def _resampled(
    layouts: dict[str, RankedGroups],
    codes: np.ndarray,
    sizes: np.ndarray,
    enough: list[int],
    seeds: Sequence[int],
    resamples: int,
    budget: int,
) -> dict[str, dict[int, dict[str, np.ndarray]]]:
    """Metric samples [resamples] per scoring, group (those in ``enough``) and metric, each group resampled
    within itself; all scorings on the same draws (paired)."""
    members = np.split(np.argsort(codes, kind="stable"), np.cumsum(sizes)[:-1])  # each group's rows, in order
    names = list(layouts)
    packed = pack([layouts[s] for s in names])  # one random gather per drawn row serves both scorings
    own = [packed[members[g]] for g in enough]  # each group's, so that its draws pick from a small array
    chunk = chunk_rows(int(sizes[enough].sum()), budget)
    streams = [draws(int(sizes[g]), resamples, seeds[g], chunk) for g in enough]
    parts: dict[str, list[Tallies]] = {s: [] for s in layouts}
    for _ in range(0, resamples, chunk):
        # Native (intp) indices gather fastest.
        drawn = np.concatenate([cells[next(rows).astype(np.intp)] for cells, rows in zip(own, streams, strict=True)], 1)
        for s, cells in zip(names, unpack(drawn, len(names)), strict=True):
            parts[s].append(layouts[s].tallies(layouts[s].count(cells)))
    out: dict[str, dict[int, dict[str, np.ndarray]]] = {}
    for s, chunks in parts.items():
        values = rates(Tallies.concatenate(chunks))
        out[s] = {g: {m: values[m][:, g] for m in METRICS} for g in enough}
    return out


def _class_names(k: int, classes: Sequence[str] | None = None) -> list[str]:
    return [str(c) for c in classes] if classes is not None else [str(i) for i in range(k)]


def multiclass_summary(values: dict[str, Any], b: int, classes: Sequence[str]) -> dict[str, Any]:
    """Resample ``b`` of ``weighted_metrics``: the macro metrics, log loss, the confusion matrix (true class by
    predicted class) and ``per_class`` precision, recall, F1 and support, keyed by class name."""
    per_class = values["per_class"]
    return {
        **{m: _clean(values[m][b]) for m in (*METRICS, LOG_LOSS)},
        "confusion_matrix": values["confusion"][b].astype(int).tolist(),
        "n": int(per_class["support"][b].sum()),
        "per_class": {
            name: {
                **{m: _clean(per_class[m][b, c]) for m in PER_CLASS},
                "support": int(per_class["support"][b, c]),
            }
            for c, name in enumerate(classes)
        },
    }


def assess_multiclass_groups(
    y: np.ndarray,
    candidate: np.ndarray,
    live: np.ndarray | None,
    codes: np.ndarray,
    groups: int,
    policy: GatePolicy,
    seeds: Sequence[int],
    min_rows: int = 1,
    margin: float | None = None,
    budget: int = CELL_BUDGET,
    classes: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """``assess_groups`` for a multi-class label: ``candidate`` (and ``live``) are probabilities [rows, classes].

    Each group is resampled on its own rows with the same draws as the binary path (group ``g`` with seed
    ``seeds[g]``); candidate and live are measured on the same resamples, so their differences are paired. The
    macro metrics (under METRICS' names), log loss and each class's precision, recall and F1 get percentile
    intervals; ``difference`` covers METRICS (higher is better), which the gate judges.
    """
    y, codes = np.asarray(y, dtype=int), np.asarray(codes, dtype=np.int64)
    scored = {"candidate": np.asarray(candidate, dtype=float)}
    if live is not None:
        scored["live"] = np.asarray(live, dtype=float)
    names = _class_names(scored["candidate"].shape[1], classes)
    margin = policy.max_regression if margin is None else margin
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes, minlength=groups)
    members = np.split(order, np.cumsum(sizes)[:-1])  # each group's rows, in order
    results = []
    for g in range(groups):
        rows = members[g]
        yg = y[rows]
        ranked = {s: score_rows(yg, p[rows]) for s, p in scored.items()}  # once, for the point and every resample
        point = {s: weighted_metrics(np.ones((1, len(rows))), yg, p[rows], ranked[s]) for s, p in scored.items()}
        result: dict[str, Any] = {s: multiclass_summary(point[s], 0, names) for s in scored}
        if len(rows) < max(min_rows, 1):
            result["sufficient"] = False
            results.append(result)
            continue
        parts: dict[str, list[dict[str, Any]]] = {s: [] for s in scored}
        for drawn in draws(len(rows), policy.bootstrap_samples, seeds[g], chunk_rows(len(rows), budget)):
            weights = resample_weights(drawn.astype(np.int64), len(rows))
            for s, p in scored.items():
                parts[s].append(weighted_metrics(weights, yg, p[rows], ranked[s]))
        boot = {s: _concatenate(chunks) for s, chunks in parts.items()}
        result["sufficient"] = True
        for s in scored:
            result[s]["ci"] = {m: _interval(boot[s][m], policy.confidence) for m in (*METRICS, LOG_LOSS)}
            for c, name in enumerate(names):
                result[s]["per_class"][name]["ci"] = {
                    m: _interval(boot[s]["per_class"][m][:, c], policy.confidence) for m in PER_CLASS
                }
        if live is not None:
            result["difference"] = paired_difference(result, boot, policy.confidence, margin)
        results.append(result)
    return results


def _concatenate(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """``weighted_metrics`` of successive chunks of resamples as one."""
    joined: dict[str, Any] = {m: np.concatenate([c[m] for c in chunks]) for m in (*METRICS, LOG_LOSS)}
    joined["per_class"] = {m: np.concatenate([c["per_class"][m] for c in chunks]) for m in chunks[0]["per_class"]}
    return joined


def paired_difference(
    result: dict[str, Any], boot: dict[str, dict[str, np.ndarray]], confidence: float, margin: float
) -> dict[str, Any]:
    """Candidate minus live per metric: the point value, its paired bootstrap interval and the share of resamples
    below ``-margin``."""
    return {
        m: {
            "point": _diff(result["candidate"][m], result["live"][m]),
            "ci": _interval(boot["candidate"][m] - boot["live"][m], confidence),
            "below_margin": _share_below(boot["candidate"][m] - boot["live"][m], -margin),
            "margin": margin,
        }
        for m in METRICS
    }


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 6)


def _feature_codes(column: pd.Series, feature: Feature) -> tuple[np.ndarray, np.ndarray]:
    """Each row's value number for one slice feature and the values' labels (``name=value``)."""
    name = feature.name
    if feature.kind == "numeric":
        edges = feature.slice_bins or []
        labels = [f"<{edges[0]:g}"] + [f"{a:g}-{b:g}" for a, b in zip(edges, edges[1:], strict=False)]
        labels.append(f">={edges[-1]:g}")
        values = column.to_numpy(dtype=float)
        codes = np.searchsorted(edges, values, side="right")
        codes[np.isnan(values)] = len(labels)
    else:
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
        labels = [str(v) for v in uniques]
        codes = np.where(codes < 0, len(labels), codes)
    return codes.astype(np.int64), np.array([f"{name}={v}" for v in [*labels, MISSING]], dtype=object)


def slice_codes(df: pd.DataFrame, features: list[str], schema: Schema) -> tuple[np.ndarray, list[str]]:
    """Each row's group number within a slice and the groups' names in sorted order (see ``slice_keys``).

    Built from per-feature codes (hashing, not string operations per row): linear in the rows.
    """
    key = np.zeros(len(df), dtype=np.int64)
    names = np.array([""], dtype=object)
    for i, name in enumerate(features):
        codes, labels = _feature_codes(df[name], schema.feature(name))
        key, combos = pd.factorize(key * len(labels) + codes)
        names = (names[combos // len(labels)] + (", " if i else "")) + labels[combos % len(labels)]
    groups, renumber = np.unique(names.astype(str), return_inverse=True)  # equal names (e.g. 1 and "1") merge
    return renumber.reshape(-1)[key].astype(np.int64), groups.tolist()


def slice_keys(df: pd.DataFrame, features: list[str], schema: Schema) -> pd.Series:
    """Each row's group within a slice, e.g. ``sex=Female, race=Black``; numerics by ``slice_bins``."""
    codes, groups = slice_codes(df, features, schema)
    return pd.Series(np.array(groups, dtype=object)[codes], index=df.index, dtype=object)


def on_threshold(p: np.ndarray, own: float, target: float) -> np.ndarray:
    """Scores moved monotonically (piecewise linearly) so that ``own`` lands on ``target``: at ``target`` they
    give the predictions they gave at ``own``, and the same ranking (ROC AUC). Lets a live model with its own
    threshold be audited beside the candidate at the candidate's. Multi-class probabilities [rows, classes]
    have no threshold and come back as they are."""
    p = np.asarray(p, dtype=float)
    if p.ndim == 2:
        return p
    return np.where(p < own, p * target / own, target + (p - own) * (1 - target) / (1 - own))


def positives(frame: pd.DataFrame, schema: Schema) -> np.ndarray:
    """1 where the row's label is the positive class, else 0; for a multi-class label each row's class id (its
    value's index in ``label.values``).

    Raises:
        ValueError: a multi-class label value is not among ``label.values``.
    """
    label = schema.label
    if label.is_multiclass:
        return label_ids(frame[label.name].astype(object).to_numpy(), label.classes)
    return (frame[label.name] == label.positive).to_numpy(dtype=int)


def label_prior(frame: pd.DataFrame, schema: Schema) -> float | np.ndarray:
    """The training rows' positive rate; for a multi-class label each class's share (in class-id order)."""
    y = positives(frame, schema)
    if not schema.label.is_multiclass:
        return float(y.mean()) if len(y) else 0.0
    counts = np.bincount(y, minlength=len(schema.label.classes)).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def evaluate_frame(
    test: pd.DataFrame,
    candidate: np.ndarray,
    live: np.ndarray | None,
    config: Config,
    train_positive_rate: float | np.ndarray,
    thresholds: tuple[float, float] = (THRESHOLD, THRESHOLD),
) -> dict[str, Any]:
    """The whole evaluation report for scored test rows (pure: no I/O); ``thresholds`` are the candidate's
    and the live model's decision thresholds. For a multi-class label the scores are probabilities
    [rows, classes], ``train_positive_rate`` is the training class prior (``label_prior``) and the report is
    ``evaluate_multiclass_frame``'s."""
    schema, policy = config.data_schema, config.thresholds.gate
    if schema.label.is_multiclass:
        return evaluate_multiclass_frame(test, candidate, live, config, np.asarray(train_positive_rate))
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
    report["slices"] = _slices(test, config, functools.partial(assess_groups, y, candidate, live), thresholds)
    return report


def evaluate_multiclass_frame(
    test: pd.DataFrame, candidate: np.ndarray, live: np.ndarray | None, config: Config, prior: np.ndarray
) -> dict[str, Any]:
    """``evaluate_frame`` for a multi-class label: the same report, its metrics macro-averaged (METRICS' names,
    so floors and the gate read them as they do a binary report), with log loss, the confusion matrix and a
    ``per_class`` table, overall and per slice. Predictions are each row's most probable class."""
    schema, policy = config.data_schema, config.thresholds.gate
    classes = list(schema.label.classes)
    y = positives(test, schema)
    majority = int(np.argmax(prior)) if len(prior) else 0
    report: dict[str, Any] = {
        "test_rows": len(y),
        "task": "multiclass",
        "classes": classes,
        "averaging": "macro (roc_auc: one-vs-rest)",
        "baseline": {
            "description": f"always predict the training majority class ({classes[majority]})",
            "accuracy": round(float(np.mean(y == majority)), 6) if len(y) else None,
            "roc_auc": 0.5,
        },
        "overall": assess_multiclass_groups(
            y, candidate, live, np.zeros(len(y), dtype=np.int64), 1, policy, [0], classes=classes
        )[0],
        "slices": {},
        "decision_thresholds": {"candidate": None, "live": None},
    }
    assess_slice = functools.partial(assess_multiclass_groups, y, candidate, live, classes=classes)
    report["slices"] = _slices(test, config, assess_slice)
    return report


def _slices(test: pd.DataFrame, config: Config, assess_slice: Callable[..., list], *extra: Any) -> dict[str, Any]:
    """Each slice's groups, assessed by ``assess_slice(codes, groups, policy, seeds, min_rows, margin, *extra)``
    (``assess_groups`` or ``assess_multiclass_groups`` with the rows' labels and scores bound)."""
    schema, policy, slices = config.data_schema, config.thresholds.gate, {}
    for features in config.slices:
        codes, groups = slice_codes(test, features, schema)
        results = assess_slice(
            codes,
            len(groups),
            policy,
            range(1, len(groups) + 1),
            policy.min_slice_size,
            policy.max_slice_regression,
            *extra,
        )
        slices[" x ".join(features)] = dict(zip(groups, results, strict=True))
    return slices
