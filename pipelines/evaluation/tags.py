"""Error analysis by tags: where the candidate's errors are, and which group to work on next.

A tag is a slice value (``sex=Female``, ``age=<30``, from ``config.slices``) or a rule from ``config.tags``
(``young: age < 25``). For each tag: the rows that carry it, their share of the data, the candidate's errors
among them, the error rate within the tag, the share of all errors that carry the tag, and the room for
improvement against the best baseline on the tag: how much the overall error rate would drop if the
candidate made no more errors there than that baseline. Tags are ranked by that room, so the table's top
row is where work pays most, not merely where the error rate is highest. Pure: no I/O.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from pipelines.core.config import Config, Schema
from pipelines.core.rules import Condition
from pipelines.evaluation.metrics import THRESHOLD, slice_codes

HLP = "hlp"
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class TagMask(NamedTuple):
    """One tag: its name, where it comes from, the rows carrying it, and a human-level error rate if known."""

    name: str
    kind: str
    definition: str
    mask: np.ndarray
    hlp_error_rate: float | None = None


def rule_mask(frame: pd.DataFrame, conditions: tuple[Condition, ...], schema: Schema) -> np.ndarray:
    """The rows that meet every condition; a missing value meets none (not even ``!=`` or ``not in``)."""
    mask = np.ones(len(frame), dtype=bool)
    for condition in conditions:
        column = frame[condition.column]
        if schema.feature(condition.column).kind == "numeric":
            column = pd.to_numeric(column, errors="coerce")
        if condition.op in ("in", "not in"):
            hit = column.isin(list(condition.value))
            hit = ~hit if condition.op == "not in" else hit
        else:
            hit = _COMPARE[condition.op](column, condition.value)
        mask &= (hit & column.notna()).to_numpy(dtype=bool)
    return mask


def tag_masks(frame: pd.DataFrame, config: Config) -> Iterator[TagMask]:
    """Every slice value of ``config.slices`` (those present in ``frame``), then every rule tag."""
    schema = config.data_schema
    for features in config.slices:
        codes, groups = slice_codes(frame, features, schema)
        for i, value in enumerate(groups):
            yield TagMask(value, "slice", " x ".join(features), codes == i)
    for tag in config.tags:
        yield TagMask(tag.name, "rule", tag.rule, rule_mask(frame, tag.conditions, schema), tag.hlp_error_rate)


def error_analysis(
    frame: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    config: Config,
    threshold: float = THRESHOLD,
    baseline_p: np.ndarray | Mapping[str, np.ndarray | None] | None = None,
) -> dict[str, Any]:
    """The candidate's errors per tag, ranked by the room for improvement against the best baseline.

    Args:
        frame: the scored rows with their raw feature columns.
        y: the true labels (0/1), one per row of ``frame``.
        p: the candidate's scores; a row is predicted positive when its score is at least ``threshold``. For a
            multi-class label, probabilities [rows, classes]: a row's prediction is its most probable class
            (an error: that class is not its label), and ``threshold`` does not apply.
        config: supplies the slices, the rule tags and the overall human-level accuracy (``baselines.hlp``).
        threshold: the candidate's decision threshold.
        baseline_p: baselines by name (one unnamed array is called ``baseline``): scores, cut at
            ``threshold``, or boolean predictions, which any threshold in (0, 1] leaves as they are (e.g.
            a live model's, cut at its own threshold).
            ``None`` entries (no live model yet) are skipped. A rule tag's ``hlp_error_rate`` is one more.

    Returns:
        JSON-ready: overall ``rows``, ``errors``, ``error_rate`` and the baselines' error rates, and
        ``tags``, a list best-first by ``room`` (signed: negative when the candidate already beats every
        baseline on the tag; None without a baseline), then by ``error_share``. Undefined values are None.
    """
    y = np.asarray(y, dtype=int)
    if not len(y) == len(p) == len(frame):
        raise ValueError(f"frame, y and p differ in length: {len(frame)}, {len(y)}, {len(p)}")
    errors = _predict(p, threshold) != y
    if baseline_p is not None and not isinstance(baseline_p, Mapping):
        baseline_p = {"baseline": baseline_p}
    baseline_errors = {
        name: _predict(scores, threshold) != y for name, scores in (baseline_p or {}).items() if scores is not None
    }
    n, total = len(y), int(errors.sum())
    overall = {name: _ratio(int(e.sum()), n) for name, e in baseline_errors.items()}
    if "accuracy" in config.baselines.hlp:
        overall[HLP] = 1 - config.baselines.hlp["accuracy"]
    rows = []
    for tag in tag_masks(frame, config):
        rows_with_tag, errors_with_tag = int(tag.mask.sum()), int(errors[tag.mask].sum())
        rates = {name: _ratio(int(e[tag.mask].sum()), rows_with_tag) for name, e in baseline_errors.items()}
        if tag.hlp_error_rate is not None:
            rates[HLP] = tag.hlp_error_rate
        rows.append(
            {
                "tag": tag.name,
                "kind": tag.kind,
                "definition": tag.definition,
                "rows": rows_with_tag,
                "data_share": _round(_ratio(rows_with_tag, n)),
                "errors": errors_with_tag,
                "error_rate": _round(_ratio(errors_with_tag, rows_with_tag)),
                "error_share": _round(_ratio(errors_with_tag, total)),
                **_against_best(rates, errors_with_tag, rows_with_tag, n),
            }
        )
    rows.sort(key=lambda r: (r["room"] is None, -(r["room"] or 0.0), -(r["error_share"] or 0.0), r["tag"]))
    return {
        "threshold": None if np.ndim(p) == 2 else threshold,
        "rows": n,
        "errors": total,
        "error_rate": _round(_ratio(total, n)),
        **_against_best(overall, total, n, n),
        "tags": rows,
    }


def _against_best(rates: dict[str, float | None], errors: int, rows: int, n: int) -> dict[str, Any]:
    """The baselines' error rates, the best of them, and the room: the drop in the overall error rate
    (over ``n`` rows) if the candidate made the best baseline's error rate on these ``rows``."""
    known = {name: rate for name, rate in rates.items() if rate is not None}
    best = min(known, key=known.__getitem__) if known else None
    room = None if best is None or not rows else (errors - known[best] * rows) / n
    return {
        "baseline_error_rates": {name: _round(rate) for name, rate in rates.items()},
        "best_baseline": best,
        "best_baseline_error_rate": None if best is None else _round(known[best]),
        "room": _round(room),
    }


def _predict(scores: np.ndarray, threshold: float) -> np.ndarray:
    scores = np.asarray(scores)
    if scores.ndim == 2:  # multi-class probabilities: the most probable class
        return np.argmax(scores, axis=1)
    return (scores >= threshold).astype(int)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)
