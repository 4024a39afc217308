"""Fairness audit of a scored test set over the protected attributes, and the gate's checks on it (pure).

For each protected attribute (numeric ones binned by their ``slice_bins``) and each declared intersection,
every group gets its size, selection rate, TPR, FPR, FNR, precision and ROC AUC. Point values come from
Fairlearn's ``MetricFrame`` and its metrics; intervals from one bootstrap: a single resample index matrix
over all rows (drawn in chunks of resamples to bound memory; the same draws as ``metrics.assess`` with the
same seed), counted per (group, score) cell and reduced per group with array operations
(``resampling.RankedGroups``, linear in the rows), never a loop of MetricFrames. The per-group figures,
the between-group gaps and the candidate-minus-live differences all come from the same resamples.

Between groups: demographic parity difference and ratio, equalized odds difference, and the largest
TPR/FPR/FNR gaps with the two groups that make them, each with an interval, so the gate can act at the
confidence bound. Groups below ``min_group_size`` are listed as ``too_small`` (point values only) and
left out of the gaps; they are never merged into other groups. A metric that is undefined on a group
(e.g. TPR without positives, ROC AUC with one class) is ``None``.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.config import Config
from pipelines.evaluation.metrics import _clean, _interval, slice_codes
from pipelines.evaluation.multiclass import predicted_classes, resample_weights
from pipelines.evaluation.resampling import CELL_BUDGET, RankedGroups, Tallies, chunk_rows, draws, pack, unpack

GROUP_METRICS = (
    "selection_rate",
    "true_positive_rate",
    "false_positive_rate",
    "false_negative_rate",
    "precision",
    "roc_auc",
)
GAP_METRICS = ("true_positive_rate", "false_positive_rate", "false_negative_rate")
BETWEEN = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference")
SHORT = {"true_positive_rate": "TPR", "false_positive_rate": "FPR", "false_negative_rate": "FNR"}
OK, TOO_SMALL = "ok", "too_small"
WORSENING = "equalized_odds_worsening_vs_live"
# Each check: the config field holding its limit, and whether the limit is a maximum (judged at the upper bound).
LIMITS = {
    "equalized_odds_difference": ("max_equalized_odds_difference", True),
    "demographic_parity_difference": ("max_demographic_parity_difference", True),
    "demographic_parity_ratio": ("min_demographic_parity_ratio", False),
    WORSENING: ("max_worsening_vs_live", True),
}
_EMPTY = pd.DataFrame(columns=["size", "positives", *GROUP_METRICS], dtype=float)
BLOCK_CELLS = CELL_BUDGET  # resamples x rows drawn at once: bounds memory at any test-set size


def group_rates(t: Tallies) -> dict[str, np.ndarray]:
    """GROUP_METRICS from per-group tallies (any shape), NaN where undefined. ROC AUC is the Mann-Whitney
    statistic: negatives scored below a positive count fully, tied ones half."""
    n, n_pos = t.size.astype(float), t.positives.astype(float)
    selected, tp = t.selected.astype(float), t.true_positives.astype(float)
    n_neg = n - n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = np.where(n_pos > 0, tp / n_pos, np.nan)
        return {
            "selection_rate": np.where(n > 0, selected / n, np.nan),
            "true_positive_rate": tpr,
            "false_positive_rate": np.where(n_neg > 0, (selected - tp) / n_neg, np.nan),
            "false_negative_rate": 1.0 - tpr,
            "precision": np.where(selected > 0, tp / selected, np.nan),
            "roc_auc": np.where((n_pos > 0) & (n_neg > 0), t.wins2 / (2 * n_pos * n_neg), np.nan),
        }


def _groups(codes: np.ndarray) -> int:
    return int(codes.max()) + 1 if len(codes) else 0


def grouped_metrics(
    weights: np.ndarray, codes: np.ndarray, y: np.ndarray, p: np.ndarray, threshold: float
) -> dict[str, np.ndarray]:
    """Each group's metrics under each row of ``weights`` (row multiplicities [resamples, rows]), shape
    [resamples, groups]; ``codes`` numbers the groups 0..G-1."""
    codes = np.asarray(codes)
    layout = RankedGroups.build(codes, _groups(codes), y, p, threshold)
    return group_rates(layout.tallies(layout.weigh(np.asarray(weights, dtype=float))))


def bootstrap(
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    codes: dict[str, np.ndarray],
    threshold: float,
    resamples: int,
    seed: int,
    block_cells: int = BLOCK_CELLS,
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Per-group metric samples [resamples, groups] for each (scoring, grouping), all on the same resamples.

    The resample index matrix is ``default_rng(seed).integers(0, n, (resamples, n))``, drawn about
    ``block_cells`` rows at a time (which yields the same matrix); each chunk is counted per cell of every
    (scoring, grouping) layout.
    """
    n = len(y)
    layouts = {
        (s, g): RankedGroups.build(codes[g], _groups(codes[g]), y, scores[s], threshold) for s in scores for g in codes
    }
    keys = list(layouts)
    pairs = [keys[i : i + 2] for i in range(0, len(keys), 2)]  # one random gather of the drawn rows per pair
    packed = [pack([layouts[key] for key in pair]) for pair in pairs]
    parts: dict[tuple[str, str], list[Tallies]] = defaultdict(list)
    for idx in draws(n, resamples, seed, chunk_rows(n, block_cells)):
        idx = idx.astype(np.intp)  # native indices gather fastest
        for pair, cells in zip(pairs, packed, strict=True):
            for key, drawn in zip(pair, unpack(cells[idx], len(pair)), strict=True):
                parts[key].append(layouts[key].tallies(layouts[key].count(drawn)))
    return {key: group_rates(Tallies.concatenate(chunks)) for key, chunks in parts.items()}


def _roc_auc(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y_true)) < 2:
        return np.nan
    return float(roc_auc_score(y_true, y_pred, sample_weight=sample_weight))


def _size(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray) -> float:
    return float(np.sum(sample_weight))


def _positives(y_true: np.ndarray, y_pred: np.ndarray, sample_weight: np.ndarray) -> float:
    return float(np.sum(sample_weight * (y_true == 1)))


def cells(keys: pd.Series, y: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    """The rows collapsed to distinct (group, label, value) with their count as ``weight``.

    Fairlearn's metrics take sample weights, so they give the same values on these cells as on the rows,
    while ``MetricFrame``'s cost (it copies every value of every column through Python) stops growing with
    the rows.
    """
    rows = pd.DataFrame({"group": keys.array, "y": y, "value": values})  # a categorical stays one: grouped by code
    return rows.groupby(["group", "y", "value"], observed=True, sort=False).size().reset_index(name="weight")


def _frame(metrics: dict[str, Any], table: pd.DataFrame, name: str) -> pd.DataFrame:
    from fairlearn.metrics import MetricFrame

    weight = {"sample_weight": table["weight"].to_numpy(dtype=float)}
    return MetricFrame(
        metrics=metrics,
        y_true=table["y"].to_numpy(),
        y_pred=table["value"].to_numpy(),
        sensitive_features=table["group"].rename(name),
        sample_params={metric: weight for metric in metrics},
    ).by_group


def metric_frame(y: np.ndarray, p: np.ndarray, keys: pd.Series, threshold: float, auc: bool = True) -> pd.DataFrame:
    """Per-group point values from Fairlearn's ``MetricFrame``: ``size``, ``positives`` and GROUP_METRICS.

    Fairlearn's rates are 0 where their denominator is empty; those become NaN here, as in the bootstrap.
    ROC AUC is left out (NaN) when ``auc`` is False.
    """
    from fairlearn.metrics import false_negative_rate, false_positive_rate, selection_rate, true_positive_rate
    from sklearn.metrics import precision_score

    rates = _frame(
        {
            "size": _size,
            "positives": _positives,
            "selection_rate": selection_rate,
            "true_positive_rate": partial(true_positive_rate, pos_label=1),
            "false_positive_rate": partial(false_positive_rate, pos_label=1),
            "false_negative_rate": partial(false_negative_rate, pos_label=1),
            "precision": partial(precision_score, pos_label=1, zero_division=np.nan),
        },
        cells(keys, y, (p >= threshold).astype(int)),
        str(keys.name),
    )
    rates["roc_auc"] = _frame({"roc_auc": _roc_auc}, cells(keys, y, p), str(keys.name))["roc_auc"] if auc else np.nan
    frame = rates.astype(float)
    frame.loc[frame["positives"] == 0, ["true_positive_rate", "false_negative_rate"]] = np.nan
    frame.loc[frame["positives"] == frame["size"], "false_positive_rate"] = np.nan
    return frame


def _spread(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per resample (row of [resamples, groups]): max - min over the defined groups, the max and the min."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        high, low = np.nanmax(samples, axis=1), np.nanmin(samples, axis=1)
    return high - low, high, low


def between_samples(samples: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The between-group figures for each resample, from per-group samples of the sufficient groups."""
    dp, high, low = _spread(samples["selection_rate"])
    gaps = {m: _spread(samples[m])[0] for m in GAP_METRICS}
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(high > 0, low / high, np.nan)
    return {
        "demographic_parity_difference": dp,
        "demographic_parity_ratio": ratio,
        "equalized_odds_difference": np.fmax(gaps["true_positive_rate"], gaps["false_positive_rate"]),
        **gaps,
    }


def _gap(frame: pd.DataFrame, metric: str) -> tuple[float, list[str] | None]:
    values = frame[metric].dropna()
    if len(values) < 2:
        return np.nan, None
    return float(values.max() - values.min()), [str(values.idxmax()), str(values.idxmin())]


def between_groups(
    y: np.ndarray, p: np.ndarray, keys: pd.Series, frame: pd.DataFrame, threshold: float
) -> dict[str, Any]:
    """Point values between the groups in ``frame`` (the sufficient ones), with Fairlearn's functions.

    Equalized odds needs both classes in every group; otherwise it is the larger TPR/FPR gap over the groups
    where each rate is defined (Fairlearn would count an undefined rate as 0).
    """
    from fairlearn.metrics import demographic_parity_difference, demographic_parity_ratio, equalized_odds_difference

    mask = keys.isin(frame.index).to_numpy()
    table = cells(keys[mask], y[mask], (p[mask] >= threshold).astype(int))
    args = (table["y"].to_numpy(), table["value"].to_numpy())
    kwargs = {"sensitive_features": table["group"].to_numpy(), "sample_weight": table["weight"].to_numpy(dtype=float)}
    gaps = {m: _gap(frame, m) for m in GAP_METRICS}
    driver = max(("true_positive_rate", "false_positive_rate"), key=lambda m: np.nan_to_num(gaps[m][0], nan=-1))
    if ((frame["positives"] > 0) & (frame["positives"] < frame["size"])).all():
        odds = equalized_odds_difference(*args, **kwargs)
    else:
        odds = np.fmax(gaps["true_positive_rate"][0], gaps["false_positive_rate"][0])
    parity = _gap(frame, "selection_rate")[1]
    return {
        "demographic_parity_difference": {"value": demographic_parity_difference(*args, **kwargs), "groups": parity},
        "demographic_parity_ratio": {"value": demographic_parity_ratio(*args, **kwargs), "groups": parity},
        "equalized_odds_difference": {"value": odds, "metric": driver, "groups": gaps[driver][1]},
        **{m: {"value": value, "groups": groups} for m, (value, groups) in gaps.items()},
    }


def _with_intervals(
    points: dict[str, dict[str, Any]], samples: dict[str, np.ndarray], confidence: float
) -> dict[str, Any]:
    figures = {
        name: {**figure, "value": _clean(figure["value"]), "ci": _interval(samples[name], confidence)}
        for name, figure in points.items()
    }
    return {
        **{name: figures[name] for name in BETWEEN},
        "largest_gaps": {m: figures[m] for m in GAP_METRICS},
    }


def _group_entry(row: pd.Series, status: str, samples: dict[str, np.ndarray] | None, confidence: float) -> dict:
    entry: dict[str, Any] = {"status": status, "size": int(row["size"]), "positives": int(row["positives"])}
    entry.update({m: _clean(row[m]) for m in GROUP_METRICS})
    if samples is not None:
        entry["ci"] = {m: _interval(samples[m], confidence) for m in GROUP_METRICS}
    return entry


def audit(
    frame: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    config: Config,
    live_p: np.ndarray | None = None,
    threshold: float = 0.5,
    seed: int = 0,
) -> dict[str, Any]:
    """The fairness audit of one scored test set (JSON-serialisable; see the module docstring).

    Args:
        frame: the raw test rows; only the protected columns are read.
        y: 0/1 labels, one per row of ``frame``.
        p: the candidate's scores.
        config: protected attributes, ``thresholds.fairness`` and the bootstrap settings of ``thresholds.gate``.
        live_p: the live model's scores on the same rows, when a model is live.
        threshold: scores at or above it are predicted positive.
        seed: of the resample index matrix.

    Returns:
        ``attributes``: per attribute or intersection (named like evaluation slices, ``sex x race``), its
        ``groups`` (each with ``status``, ``size``, the metrics and, when not too small, ``ci``), the
        ``too_small`` group names, whether it is ``sufficient`` (two or more groups large enough) and the
        between-group figures for the ``candidate`` (and ``live``, plus ``candidate_minus_live`` on the
        paired resamples).
    """
    settings, policy, schema = config.thresholds.fairness, config.thresholds.gate, config.data_schema
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    if not len(frame) == len(y) == len(p) or (live_p is not None and len(live_p) != len(y)):
        raise ValueError(f"audit: {len(frame)} rows, {len(y)} labels, {len(p)} scores must match")
    if p.ndim == 2:
        return audit_multiclass(frame, y, p, config, live_p, seed)
    scores = {"candidate": p} if live_p is None else {"candidate": p, "live": np.asarray(live_p, dtype=float)}
    specs = {" x ".join(spec): spec for spec in [[a] for a in config.protected_attributes] + settings.intersections}
    keys, codes, frames = {}, {}, {}
    for name, spec in specs.items():
        codes[name], groups = slice_codes(frame, spec, schema)
        keys[name] = pd.Series(pd.Categorical.from_codes(codes[name], categories=groups), name=name)
        frames[name] = metric_frame(y, p, keys[name], threshold).loc[groups] if len(y) else _EMPTY
    samples = bootstrap(y, scores, codes, threshold, policy.bootstrap_samples, seed) if len(y) else {}

    attributes = {}
    for name, spec in specs.items():
        groups = frames[name]
        ok = (groups["size"] >= settings.min_group_size).to_numpy()
        entry: dict[str, Any] = {"columns": spec, "groups": {}, "too_small": [str(g) for g in groups.index[~ok]]}
        for i, (group, row) in enumerate(groups.iterrows()):
            own = {m: samples["candidate", name][m][:, i] for m in GROUP_METRICS} if ok[i] else None
            entry["groups"][str(group)] = _group_entry(row, OK if ok[i] else TOO_SMALL, own, policy.confidence)
        entry["sufficient"] = int(ok.sum()) >= 2
        if entry["sufficient"]:
            boot = {s: between_samples({m: samples[s, name][m][:, ok] for m in GROUP_METRICS}) for s in scores}
            points = {}
            for s, score in scores.items():
                own_frame = groups if s == "candidate" else metric_frame(y, score, keys[name], threshold, auc=False)
                own_frame = own_frame.loc[groups.index[ok]]
                points[s] = between_groups(y, score, keys[name], own_frame, threshold)
                entry[s] = _with_intervals(points[s], boot[s], policy.confidence)
            if "live" in scores:
                entry["candidate_minus_live"] = {
                    figure: {
                        "value": _clean(points["candidate"][figure]["value"] - points["live"][figure]["value"]),
                        "ci": _interval(boot["candidate"][figure] - boot["live"][figure], policy.confidence),
                    }
                    for figure in BETWEEN
                }
        attributes[name] = entry
    return {
        "threshold": threshold,
        "confidence": policy.confidence,
        "bootstrap_samples": policy.bootstrap_samples,
        "min_group_size": settings.min_group_size,
        "live_scored": live_p is not None,
        "attributes": attributes,
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _span(ci: list[float] | None) -> str:
    return "[n/a]" if ci is None else f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


def _check(
    name: str, attribute: str, entry: dict[str, Any], limit: float, severity: str, upper: bool, min_size: int
) -> dict[str, Any]:
    """One limit on one attribute, judged at the confidence bound (upper for a maximum, lower for a minimum)."""
    worsening = name == WORSENING
    label = "equalized odds difference" if worsening else name.replace("_", " ")
    if not entry["sufficient"]:
        figure: dict[str, Any] = {"value": None, "ci": None}
        what = f"fewer than two groups with >= {min_size} rows"
    elif worsening:
        figure = entry["candidate_minus_live"]["equalized_odds_difference"]
        before, after = (entry[s]["equalized_odds_difference"]["value"] for s in ("live", "candidate"))
        what = f"{label} {_fmt(after)} vs live {_fmt(before)}, change {_fmt(figure['value'])} {_span(figure['ci'])}"
    else:
        figure = entry["candidate"][name]
        what = f"{label} {_fmt(figure['value'])} {_span(figure['ci'])}"
        if figure.get("groups"):
            on = f" on {SHORT.get(figure['metric'], figure['metric'])}" if "metric" in figure else ""
            what += f" ({figure['groups'][0]} vs {figure['groups'][1]}{on})"
    bound = None if figure["ci"] is None else figure["ci"][1 if upper else 0]
    sufficient = bound is not None
    success = sufficient and (bound <= limit if upper else bound >= limit)
    if sufficient:
        side, relation = ("upper", "<=" if success else ">") if upper else ("lower", ">=" if success else "<")
        what += f", {side} bound {_fmt(bound)} {relation} limit {_fmt(limit)}"
    else:
        what += f", not judged (limit {_fmt(limit)})"
    if entry["too_small"]:
        what += f"; {len(entry['too_small'])} group(s) under {min_size} rows left out"
    return {
        "name": name,
        "attribute": attribute,
        "measured": figure["value"],
        "interval": figure["ci"],
        "bound": bound,
        "limit": limit,
        "severity": severity,
        "success": success,
        "sufficient": sufficient,
        "excluded_groups": entry["too_small"],
        "detail": f"{attribute}: {what}",
    }


def fairness_checks(audit_report: dict[str, Any], config: Config) -> list[dict[str, Any]]:
    """One check per configured limit per audited attribute (``thresholds.fairness.limits``; None: not checked).

    ``success`` is False when the bound breaks the limit, and also when the figure could not be judged
    (fewer than two large-enough groups, or undefined): ``sufficient`` is False then, which the gate can
    read as insufficient evidence rather than a breach. The worsening-vs-live check needs a live model.
    """
    settings = config.thresholds.fairness
    checks = []
    for attribute, entry in audit_report["attributes"].items():
        limits = settings.limits(attribute)
        for name, (field, upper) in LIMITS.items():
            limit = getattr(limits, field)
            if limit is None or (name == WORSENING and not audit_report["live_scored"]):
                continue
            severity = settings.severities.get(name, settings.severity)
            checks.append(_check(name, attribute, entry, limit, severity, upper, audit_report["min_group_size"]))
    return checks


def _multiclass_rates(weights: np.ndarray, cells: np.ndarray, groups: int, k: int) -> dict[str, np.ndarray]:
    """Per-group accuracy and per-class recall [resamples, groups] from each row's ``_multiclass_cells``, counted
    per resample (memory: the weights and a [groups, 2 + 2k] table per resample)."""
    width = groups * (2 + 2 * k)
    sums = np.stack(
        [sum(np.bincount(c, weights=w * m, minlength=width) for c, m in cells) for w in np.atleast_2d(weights)]
    ).reshape(-1, groups, 2 + 2 * k)
    with np.errstate(divide="ignore", invalid="ignore"):
        rates = {"accuracy": np.where(sums[..., 0] > 0, sums[..., 1] / sums[..., 0], np.nan)}
        for c in range(k):
            support, hits = sums[..., 2 + 2 * c], sums[..., 3 + 2 * c]
            rates[f"recall {c}"] = np.where(support > 0, hits / support, np.nan)
    rates["size"] = sums[..., 0]
    return rates


def _multiclass_cells(
    codes: np.ndarray, y: np.ndarray, pred: np.ndarray, k: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Where each row counts in its group's [rows, correct, then per class: rows, correct] table (flattened over
    the groups), each with a 0/1 mask: in the group, correct, of its class, of its class and correct."""
    base = np.asarray(codes, dtype=np.int64) * (2 + 2 * k)
    right = (pred == y).astype(float)
    ones = np.ones(len(y))
    return [(base, ones), (base + 1, right), (base + 2 + 2 * y, ones), (base + 3 + 2 * y, right)]


def audit_multiclass(
    frame: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    config: Config,
    live_p: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """``audit`` for a multi-class label: ``p`` (and ``live_p``) are probabilities [rows, classes], a row's
    prediction its most probable class.

    Each group gets its accuracy and each class's recall (``recall <class>``), with intervals from the same
    resample index matrix as the binary audit (``default_rng(seed).integers(0, n, (resamples, n))``). Between
    the large-enough groups: the accuracy gap (``accuracy_difference``), each class's recall gap (equal
    opportunity per class, in ``largest_gaps``) and ``equalized_odds_difference``, the largest of the recall
    gaps, which ``max_equalized_odds_difference`` and ``max_worsening_vs_live`` limit.
    """
    settings, policy, schema = config.thresholds.fairness, config.thresholds.gate, config.data_schema
    classes = list(schema.label.classes)
    k = len(classes)
    names = {"accuracy": "accuracy", **{f"recall {c}": f"recall {name}" for c, name in enumerate(classes)}}
    scores = {"candidate": p} if live_p is None else {"candidate": p, "live": np.asarray(live_p, dtype=float)}
    specs = {" x ".join(spec): spec for spec in [[a] for a in config.protected_attributes] + settings.intersections}
    n = len(y)
    layouts, group_names = {}, {}
    for name, spec in specs.items():
        codes, group_names[name] = slice_codes(frame, spec, schema)
        for s, score in scores.items():
            layouts[s, name] = _multiclass_cells(codes, y, predicted_classes(score), k)
    point = {
        key: _multiclass_rates(np.ones((1, n)), cols, len(group_names[key[1]]), k) for key, cols in layouts.items()
    }
    parts: dict[tuple[str, str], list[dict[str, np.ndarray]]] = defaultdict(list)
    if n:
        chunk = chunk_rows(n, BLOCK_CELLS)
        for idx in draws(n, policy.bootstrap_samples, seed, chunk):
            weights = resample_weights(idx.astype(np.int64), n)
            for key, cols in layouts.items():
                parts[key].append(_multiclass_rates(weights, cols, len(group_names[key[1]]), k))
    samples = {key: {m: np.concatenate([c[m] for c in chunks]) for m in names} for key, chunks in parts.items()}

    attributes = {}
    for name, spec in specs.items():
        groups = group_names[name]
        own = point["candidate", name]
        ok = own["size"][0] >= settings.min_group_size
        entry: dict[str, Any] = {
            "columns": spec,
            "groups": {},
            "too_small": [str(g) for g, big in zip(groups, ok, strict=True) if not big],
        }
        for i, group in enumerate(groups):
            g: dict[str, Any] = {"status": OK if ok[i] else TOO_SMALL, "size": int(own["size"][0, i])}
            g.update({label: _clean(own[m][0, i]) for m, label in names.items()})
            if ok[i] and samples:
                g["ci"] = {
                    label: _interval(samples["candidate", name][m][:, i], policy.confidence)
                    for m, label in names.items()
                }
            entry["groups"][str(group)] = g
        entry["sufficient"] = int(ok.sum()) >= 2 and bool(samples)
        if entry["sufficient"]:
            kept = [g for g, big in zip(groups, ok, strict=True) if big]
            figures = {}
            for s in scores:
                figures[s] = _multiclass_between(point[s, name], samples[s, name], ok, kept, names)
                entry[s] = {
                    figure: {key: value for key, value in f.items() if key != "samples"}
                    | {"ci": _interval(f["samples"], policy.confidence)}
                    for figure, f in figures[s].items()
                    if figure != "largest_gaps"
                }
                entry[s]["largest_gaps"] = {
                    m: {key: value for key, value in f.items() if key != "samples"}
                    | {"ci": _interval(f["samples"], policy.confidence)}
                    for m, f in figures[s]["largest_gaps"].items()
                }
            if "live" in scores:
                entry["candidate_minus_live"] = {
                    figure: {
                        "value": _difference(figures["candidate"][figure]["value"], figures["live"][figure]["value"]),
                        "ci": _interval(
                            figures["candidate"][figure]["samples"] - figures["live"][figure]["samples"],
                            policy.confidence,
                        ),
                    }
                    for figure in MULTICLASS_BETWEEN
                }
        attributes[name] = entry
    return {
        "task": "multiclass",
        "threshold": None,
        "group_metrics": list(names.values()),
        "between": list(MULTICLASS_BETWEEN),
        "confidence": policy.confidence,
        "bootstrap_samples": policy.bootstrap_samples,
        "min_group_size": settings.min_group_size,
        "live_scored": live_p is not None,
        "attributes": attributes,
    }


MULTICLASS_BETWEEN = ("equalized_odds_difference", "accuracy_difference")


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 6)


def _multiclass_between(
    point: dict[str, np.ndarray], boot: dict[str, np.ndarray], ok: np.ndarray, kept: list[str], names: dict[str, str]
) -> dict[str, Any]:
    """The gaps between the large-enough groups: per metric the point value, the two groups making it and its
    resample values; ``equalized_odds_difference`` is the largest per-class recall gap."""
    gaps: dict[str, dict[str, Any]] = {}
    for m, label in names.items():
        values = point[m][0, ok]
        defined = ~np.isnan(values)
        if defined.sum() >= 2:
            high, low = int(np.nanargmax(values)), int(np.nanargmin(values))
            value, groups = float(values[high] - values[low]), [str(kept[high]), str(kept[low])]
        else:
            value, groups = np.nan, None
        gaps[label] = {"value": _clean(value), "groups": groups, "samples": _spread(boot[m][:, ok])[0]}
    recalls = [label for m, label in names.items() if m != "accuracy"]
    driver = max(recalls, key=lambda label: -1.0 if gaps[label]["value"] is None else gaps[label]["value"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        worst = np.nanmax(np.stack([gaps[label]["samples"] for label in recalls], axis=1), axis=1)
    return {
        "equalized_odds_difference": {**gaps[driver], "metric": driver, "samples": worst},
        "accuracy_difference": gaps["accuracy"],
        "largest_gaps": gaps,
    }
