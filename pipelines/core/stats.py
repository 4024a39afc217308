"""Statistics shared by the checks that test many things at once (drift features, gate slices)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def adjust_p_values(p_values: Sequence[float], method: str) -> list[float]:
    """P-values adjusted for testing them all at once.

    Args:
        p_values: the raw p-values, in any order.
        method: ``holm`` (controls the chance of any false flag), ``bh`` (Benjamini-Hochberg: controls
            the expected share of false flags among the flags) or ``none``.

    Returns:
        The adjusted p-values, in the order given; a test is significant at level alpha when its
        adjusted p-value is <= alpha.
    """
    p = np.asarray(p_values, dtype=float)
    if method == "none" or p.size == 0:
        return p.tolist()
    if method == "bh":
        from scipy import stats

        return stats.false_discovery_control(p, method="bh").tolist()
    if method != "holm":
        raise ValueError(f"unknown correction {method!r}: expected holm, bh or none")
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.minimum(np.maximum.accumulate((m - np.arange(m)) * p[order]), 1.0)
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted.tolist()
