"""The decision threshold: fixed by config, or chosen on held-out rows for a target (pure: no I/O).

``max_f1`` takes the cut with the best F1 on the validation rows; ``min_precision`` the lowest cut
whose precision reaches the target (the most recall at that precision). With no usable validation
rows, or a target no cut reaches, the threshold falls back to the configured ``value`` and the
record says why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipelines.core.config import DecisionThreshold


def cut_metrics(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(cuts, precision, recall, f1) for predicting positive at ``p >= cut``, for every distinct score."""
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    last = np.r_[p_sorted[1:] != p_sorted[:-1], True]  # the last row of each run of equal scores
    tp = np.cumsum(y_sorted)[last].astype(float)
    predicted = (np.arange(len(p)) + 1)[last].astype(float)
    positives = float(y.sum())
    precision = tp / predicted
    recall = tp / positives if positives else np.zeros_like(tp)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return p_sorted[last], precision, recall, f1


def choose_threshold(y: np.ndarray, p: np.ndarray, setting: DecisionThreshold) -> dict[str, Any]:
    """The threshold for ``setting`` on validation labels ``y`` and scores ``p``, with how it was chosen."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    record: dict[str, Any] = {"strategy": setting.strategy, "value": setting.value, "validation_rows": int(len(y))}
    if setting.strategy == "fixed":
        return {**record, "threshold": setting.value, "reason": f"fixed at {setting.value}"}
    if len(y) == 0 or y.min() == y.max():
        reason = f"fell back to {setting.value}: the validation split has {len(y)} rows and needs both classes"
        return {**record, "threshold": setting.value, "reason": reason}
    cuts, precision, recall, f1 = cut_metrics(y, p)
    if setting.strategy == "max_f1":
        best = int(np.argmax(f1))
        reason = (
            f"best F1 {f1[best]:.4f} on {len(y)} validation rows "
            f"(precision {precision[best]:.4f}, recall {recall[best]:.4f})"
        )
    else:
        reaching = np.flatnonzero(precision >= setting.value)
        if len(reaching) == 0:
            reason = (
                f"fell back to {setting.value}: no cut reaches precision {setting.value} (best {precision.max():.4f})"
            )
            return {**record, "threshold": setting.value, "reason": reason}
        best = int(reaching[np.argmax(recall[reaching])])
        reason = (
            f"lowest cut with precision >= {setting.value} on {len(y)} validation rows "
            f"(precision {precision[best]:.4f}, recall {recall[best]:.4f})"
        )
    return {**record, "threshold": round(float(cuts[best]), 6), "reason": reason}


def multiclass_threshold(setting: DecisionThreshold) -> dict[str, Any]:
    """The record for a multi-class label: no threshold (a row's class is its most probable one), and why
    ``setting`` (which cuts a single positive-class score) was not applied."""
    return {
        "strategy": setting.strategy,
        "value": setting.value,
        "validation_rows": 0,
        "threshold": None,
        "reason": f"skipped: the label is multi-class, a row's class is its most probable one (argmax), so "
        f"training.threshold ({setting.strategy}) does not apply",
    }
