"""Multi-class metrics under row weights: one pass gives the point values (every weight 1) and every bootstrap
resample (a row's weight is how often the resample drew it). Pure NumPy, no I/O.

A row's prediction is its most probable class (argmax; no threshold). The macro figures follow scikit-learn's
defaults: precision, recall and F1 are averaged over the classes present among the labels or the predictions
(a class's precision is 0 when it is never predicted, its recall 0 when it never occurs), ROC AUC is the mean
of the one-vs-rest AUCs (``roc_auc_score(multi_class="ovr", average="macro")``) over the classes that have
both positives and negatives in the rows, and log loss clips probabilities to ``[eps, 1 - eps]`` and
renormalises each row, as ``log_loss`` does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

MACRO = ("accuracy", "precision", "recall", "f1", "roc_auc")  # the names of METRICS, each macro-averaged
PER_CLASS = ("precision", "recall", "f1")
LOG_LOSS = "log_loss"


def predicted_classes(p: np.ndarray) -> np.ndarray:
    """Each row's most probable class id (the first on a tie)."""
    return np.argmax(np.asarray(p), axis=1)


def resample_weights(drawn: np.ndarray, n: int) -> np.ndarray:
    """Row multiplicities [resamples, n] of drawn row indices [resamples, draws]."""
    resamples = drawn.shape[0]
    flat = (np.arange(resamples, dtype=np.int64)[:, None] * n + drawn).ravel()
    return np.bincount(flat, minlength=resamples * n).reshape(resamples, n).astype(float)


def _nanmean(a: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no defined class: NaN
        return np.nanmean(a, axis=-1)


@dataclass(frozen=True)
class Scored:
    """What the metrics need of scored rows, computed once and reused by every chunk of resamples."""

    k: int
    cell: np.ndarray  # each row's (true class, predicted class) cell of the confusion matrix
    row_loss: np.ndarray  # each row's log loss
    rankings: list[tuple[np.ndarray, int]]  # per class: each row's run of tied scores x 2 + is of the class; runs


def score_rows(y: np.ndarray, p: np.ndarray) -> Scored:
    """``Scored`` for labels ``y`` (class ids) and probabilities ``p`` [n, classes]."""
    y, p = np.asarray(y, dtype=np.int64), np.asarray(p, dtype=float)
    k = p.shape[1]
    eps = np.finfo(float).eps
    clipped = np.clip(p, eps, 1 - eps)
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    rankings = []
    for c in range(k):
        runs, run = np.unique(p[:, c], return_inverse=True)  # runs of equal scores, in score order
        rankings.append((run.reshape(-1) * 2 + (y == c), len(runs)))
    return Scored(k, y * k + predicted_classes(p), -np.log(clipped[np.arange(len(y)), y]), rankings)


def _ovr_auc(weights: np.ndarray, ranking: tuple[np.ndarray, int]) -> np.ndarray:
    """Weighted Mann-Whitney AUC [resamples] of one class's score, its rows against the others (ties half):
    the weights are counted per (run of tied scores, of the class or not), then ranked by cumulative sums."""
    cells, runs = ranking
    counts = np.stack([np.bincount(cells, weights=w, minlength=2 * runs) for w in weights]).reshape(-1, runs, 2)
    wn, wp = counts[..., 0], counts[..., 1]
    below = np.cumsum(wn, axis=1) - wn
    n_pos, n_neg = wp.sum(axis=1), wn.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (wp * (below + 0.5 * wn)).sum(axis=1) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def weighted_metrics(weights: np.ndarray, y: np.ndarray, p: np.ndarray, scored: Scored | None = None) -> dict[str, Any]:
    """The multi-class metrics of rows ``y`` (class ids) with probabilities ``p`` [n, classes] under each row of
    ``weights`` [resamples, n]; ``scored`` (``score_rows(y, p)``) saves recomputing it chunk after chunk.

    Returns:
        Each of ``MACRO`` and ``log_loss`` as [resamples] (NaN where undefined), ``per_class`` (precision,
        recall, F1 and support, each [resamples, classes]; NaN for a class neither present nor predicted) and
        ``confusion`` [resamples, classes, classes] (true class by predicted class).
    """
    scored = scored or score_rows(y, p)
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    k = scored.k
    # Counted per resample: memory stays that of the weights, whatever the number of classes.
    confusion = np.stack([np.bincount(scored.cell, weights=w, minlength=k * k) for w in weights]).reshape(-1, k, k)
    tp = np.diagonal(confusion, axis1=1, axis2=2)
    support, predicted = confusion.sum(axis=2), confusion.sum(axis=1)
    n = support.sum(axis=1)
    present = (support + predicted) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(present, 2 * tp / (support + predicted), 0.0)
        accuracy = np.where(n > 0, tp.sum(axis=1) / n, np.nan)
        log_loss = np.where(n > 0, weights @ scored.row_loss / n, np.nan)
    if len(scored.cell):
        auc = np.stack([_ovr_auc(weights, ranking) for ranking in scored.rankings], axis=1)
    else:
        auc = np.full((len(weights), k), np.nan)

    def macro(a: np.ndarray) -> np.ndarray:
        return _nanmean(np.where(present, a, np.nan))

    return {
        "accuracy": accuracy,
        "precision": macro(precision),
        "recall": macro(recall),
        "f1": macro(f1),
        "roc_auc": _nanmean(auc),
        LOG_LOSS: log_loss,
        # A class neither in the rows nor predicted has no figures (None in reports), rather than sklearn's 0.
        "per_class": {
            **{
                name: np.where(present, a, np.nan)
                for name, a in (("precision", precision), ("recall", recall), ("f1", f1))
            },
            "support": support,
        },
        "confusion": confusion,
    }


def label_ids(values: Any, classes: tuple[str, ...] | list[str]) -> np.ndarray:
    """Class ids of label values in the order of ``classes``.

    Raises:
        ValueError: a value is not among ``classes`` (naming it).
    """
    index = {c: i for i, c in enumerate(classes)}
    values = np.asarray(values, dtype=object)
    ids = np.fromiter((index.get(v, -1) for v in values), dtype=np.int64, count=len(values))
    if (ids < 0).any():
        strangers = sorted({str(v) for v in values[ids < 0]})[:5]
        raise ValueError(f"label values {strangers} are not among the classes {list(classes)}")
    return ids
