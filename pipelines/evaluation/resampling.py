"""Bootstrap by counting: per-group confusion counts and ROC AUC under many resamples, in linear time (pure).

A resample is a row of ``default_rng(seed).integers(0, n, (resamples, n))``: the rows it draws. Nothing here
gathers the labels and scores of the drawn rows or sorts them per resample. Instead each scoring's rows are
sorted by (group, score) ONCE and collapsed into runs of equal (group, score); a row's *cell* is its run,
split by label. A resample then only needs how often it drew each cell (one ``bincount``), and from those
counts every group's size, positives, predicted positives, true positives and the Mann-Whitney win count
(ROC AUC's numerator: negatives scored below a positive count 1, tied ones 1/2) follow from cumulative sums
over the runs. All of it is integer arithmetic, so the figures are exact, equal to sorting every resample.

Memory: resamples are drawn and counted a chunk at a time, ``chunk_rows(n)`` of them, so the working set
stays near ``CELL_BUDGET`` cells whatever the number of rows; only the per-group tallies of every resample
are kept ([resamples, groups] integers).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

CELL_BUDGET = 2_000_000  # resamples x rows drawn and counted at once


def chunk_rows(n: int, budget: int = CELL_BUDGET) -> int:
    """Resamples per chunk so that a chunk holds about ``budget`` drawn rows (at least one resample)."""
    return max(1, budget // max(n, 1))


def draws(n: int, resamples: int, seed: int | np.random.Generator, chunk: int) -> Iterator[np.ndarray]:
    """The rows of ``default_rng(seed).integers(0, n, (resamples, n))``, ``chunk`` resamples at a time.

    Drawing in chunks from one generator yields the same matrix as one call, and 32-bit draws the same
    values as 64-bit ones (NumPy draws bounded integers below 2**32 from 32-bit words either way).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    dtype = np.int32 if n < 2**31 else np.int64
    for start in range(0, resamples, chunk):
        yield rng.integers(0, n, size=(min(chunk, resamples - start), n), dtype=dtype)


@dataclass(frozen=True)
class Tallies:
    """Per-group counts, each an integer array [..., groups] (one row per resample)."""

    size: np.ndarray
    positives: np.ndarray
    selected: np.ndarray  # predicted positive: score >= threshold
    true_positives: np.ndarray
    wins2: np.ndarray  # twice the Mann-Whitney count: 2 per (positive, lower negative) pair, 1 per tie

    @property
    def negatives(self) -> np.ndarray:
        return self.size - self.positives

    @staticmethod
    def concatenate(parts: list[Tallies]) -> Tallies:
        """The chunks' tallies one after another (along the resample axis)."""
        fields = ("size", "positives", "selected", "true_positives", "wins2")
        return Tallies(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))


@dataclass(frozen=True)
class RankedGroups:
    """One scoring's rows sorted by (group, score) once, as runs of equal (group, score) split by label."""

    cells: np.ndarray  # each row's cell: its run, plus ``runs`` if the row is a positive
    runs: int
    starts: np.ndarray  # [groups + 1]: each group's first run, then ``runs``
    cut: np.ndarray  # [groups]: each group's first run with score >= threshold

    @classmethod
    def build(cls, codes: np.ndarray, groups: int, y: np.ndarray, p: np.ndarray, threshold: float) -> RankedGroups:
        """``codes`` numbers each row's group in 0..groups-1 (a group may have no rows); ``y`` is 0/1."""
        codes, p = np.asarray(codes, dtype=np.int64), np.asarray(p, dtype=float)
        if np.isnan(p).any():
            raise ValueError(
                f"{int(np.isnan(p).sum())} of {len(p)} scores are NaN: the model returned no probability for "
                "those rows; check the exported model on them (e.g. inputs it cannot transform)"
            )
        # By score, then (stably) by group: the order of np.lexsort((p, codes)), with the group pass a radix sort.
        by_score = np.argsort(p, kind="stable")
        small = codes[by_score].astype(np.int16 if groups < 2**15 else np.int64)
        order = by_score[np.argsort(small, kind="stable")]
        c, ps = codes[order], p[order]
        new_run = np.ones(len(c), dtype=bool)
        new_run[1:] = (c[1:] != c[:-1]) | (ps[1:] != ps[:-1])
        run_sorted = np.cumsum(new_run) - 1
        runs = int(run_sorted[-1]) + 1 if len(c) else 0
        run = np.empty(len(c), dtype=np.int64)
        run[order] = run_sorted
        run_group, run_score = c[new_run], ps[new_run]
        starts = np.searchsorted(run_group, np.arange(groups + 1))
        below = np.bincount(run_group[run_score < threshold], minlength=groups)
        cells = run + runs * (np.asarray(y) == 1)
        return cls(cells=cells, runs=runs, starts=starts, cut=starts[:-1] + below)

    def count(self, cells: np.ndarray) -> np.ndarray:
        """How often each resample holds each cell, [resamples, 2 * runs], from the cells of the rows it drew
        (a row of ``cells``: ``self.cells[drawn rows]``). One resample at a time: working arrays stay small."""
        cells = np.atleast_2d(cells)
        counts = np.empty((len(cells), 2 * self.runs), dtype=np.int64)
        for i, drawn in enumerate(cells):
            counts[i] = np.bincount(drawn, minlength=2 * self.runs)
        return counts

    def weigh(self, weights: np.ndarray) -> np.ndarray:
        """Like ``count`` from row multiplicities ([resamples, rows], any non-negative numbers)."""
        weights = np.atleast_2d(weights)
        return np.stack([np.bincount(self.cells, weights=w, minlength=2 * self.runs) for w in weights])

    def tallies(self, counts: np.ndarray) -> Tallies:
        """Each group's tallies under each row of ``counts`` (as ``count`` returns them)."""
        r = self.runs
        neg, pos = counts[:, :r], counts[:, r:]
        cneg = _cumsum0(neg)
        cpos = _cumsum0(pos)
        first, end = self.starts[:-1], self.starts[1:]
        positives = cpos[:, end] - cpos[:, first]
        true_positives = cpos[:, end] - cpos[:, self.cut]
        negatives = cneg[:, end] - cneg[:, first]
        selected = true_positives + cneg[:, end] - cneg[:, self.cut]
        # Each positive beats the negatives in earlier runs (of its own group: less the earlier groups') and
        # ties with its own run's negatives: 2 * earlier + tied.
        contrib = _cumsum0(pos * (2 * cneg[:, :r] + neg))
        wins2 = contrib[:, end] - contrib[:, first] - 2 * positives * cneg[:, first]
        return Tallies(positives + negatives, positives, selected, true_positives, wins2)

    def point(self) -> Tallies:
        """The tallies of the rows as they are (every row once): [1, groups]."""
        return self.tallies(np.bincount(self.cells, minlength=2 * self.runs)[None, :])


def pack(layouts: list[RankedGroups]) -> np.ndarray:
    """The cells of one or two layouts of the same rows in one integer per row (the second's in the high 32 bits),
    so that one random gather of drawn rows serves both; ``unpack`` splits them again."""
    if not 1 <= len(layouts) <= 2 or any(layout.runs >= 2**30 for layout in layouts):
        raise ValueError("pack takes one or two layouts of fewer than 2**30 runs each")
    cells = layouts[0].cells.copy()
    if len(layouts) == 2:
        cells |= layouts[1].cells << 32
    return cells


def unpack(drawn: np.ndarray, layouts: int) -> list[np.ndarray]:
    """Each layout's cells from ``pack``ed ones."""
    return [drawn & 0xFFFFFFFF, drawn >> 32] if layouts == 2 else [drawn]


def _cumsum0(a: np.ndarray) -> np.ndarray:
    """Cumulative sums along the last axis with a leading 0 column: ``out[:, j]`` sums ``a[:, :j]``."""
    out = np.zeros((a.shape[0], a.shape[1] + 1), dtype=a.dtype)
    np.cumsum(a, axis=1, out=out[:, 1:])
    return out
