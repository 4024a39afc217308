"""Splits: which rows the model is tested on, which it learns from, and how alike the two are.

Two methods (``data.split.method``):

- ``hash`` (the default): a row is in the test split when a stable hash of (seed, source date, source line)
  falls below the fraction. A row keeps its side in every run whose window contains it, so yesterday's test
  rows never leak into today's training; the shares only approach the fraction as the rows grow.
- ``stratified``, for small data, where hash shares wander: rows are grouped by label x ``stratify_by``
  values (numeric columns by their ``slice_bins``), each group is ordered by the same stable hash, and its
  first ``round(fraction * n)`` rows go to test. Every group's test share is then as close to the fraction
  as whole rows allow, and the result depends on which rows there are, not on their order. A one-row group
  stays in training. A row can change sides when its group grows with the window. It needs every row of
  the window at once (a stratum's order is over all its rows), so it holds the snapshot in memory: it is meant
  for small data.

The hash split depends on each row alone, so the transform applies ``split_rows`` batch by batch to a
streamed snapshot (see ``streams``) and gets today's split exactly; the report is then built from the
batches' ``tally`` counts added up, which gives the same figures as ``split_report`` on the whole splits.

The validation split (held out of the train split to choose the decision threshold on, and to stop
training early on) is drawn from the train rows the same way with the next seed. ``split_report`` gives
each split's rows, label shares and the shares of every slice column's values, and the largest
train/test gap per column.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from pipelines.core.config import Config, ConfigError, Feature
from pipelines.core.outputs import SOURCE_DS, SOURCE_ROW

MISSING = "missing"  # the group of rows without a value (named as the evaluation's slices name it)


class Splits(NamedTuple):
    """The snapshot's rows by split; ``validation`` is empty unless ``holds_validation``."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame


def row_hashes(df: pd.DataFrame, seed: int) -> np.ndarray:
    """A stable 64-bit hash of (seed, source date, source line) per row."""
    keys = (f"{seed}/{d}/{r}".encode() for d, r in zip(df[SOURCE_DS], df[SOURCE_ROW], strict=True))
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(k, digest_size=8).digest(), "big") for k in keys),
        dtype=np.uint64,
        count=len(df),
    )


def in_test_split(df: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """True for rows in the test split: a stable hash of (seed, source date, source line)."""
    return row_hashes(df, seed) % 10_000 < round(fraction * 10_000)


def in_stratified_split(df: pd.DataFrame, fraction: float, seed: int, strata: np.ndarray) -> np.ndarray:
    """True for the first ``round(fraction * n)`` rows of each stratum of ``n`` rows, in stable-hash order.

    Args:
        df: rows with their source columns.
        fraction: the share of each stratum to choose.
        seed: the hash seed.
        strata: each row's stratum as an integer (only equality matters, not the numbering).

    Returns:
        The chosen rows; none of a one-row stratum.
    """
    order = np.lexsort((row_hashes(df, seed), strata))
    ordered = np.asarray(strata)[order]
    starts = np.r_[0, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1]
    sizes = np.diff(np.r_[starts, len(ordered)])
    take = np.where(sizes > 1, np.floor(fraction * sizes + 0.5), 0)
    rank = np.arange(len(ordered)) - np.repeat(starts, sizes)
    chosen = np.zeros(len(df), dtype=bool)
    chosen[order] = rank < np.repeat(take, sizes)
    return chosen


def groups(column: pd.Series, feature: Feature | None = None) -> np.ndarray:
    """Each row's group in one column: its value as text, or a numeric feature's slice bin (named as the
    evaluation names slice groups: ``<30``, ``30-45``, ``>=60``); rows without a value form their own group."""
    if feature is not None and feature.kind == "numeric":
        edges = feature.slice_bins or []
        names = np.array([f"<{edges[0]:g}", *(f"{a:g}-{b:g}" for a, b in pairwise(edges)), f">={edges[-1]:g}"])
        values = column.to_numpy(dtype=float)
        return np.where(np.isnan(values), MISSING, names[np.searchsorted(edges, values, side="right")])
    return column.astype(object).where(column.notna(), MISSING).astype(str).to_numpy()


def stratify_features(config: Config) -> list[Feature]:
    """The ``data.split.stratify_by`` features.

    Raises:
        ConfigError: a column is not a feature, or is numeric without ``slice_bins``.
    """
    known = {f.name: f for f in config.data_schema.features}
    features = []
    for name in config.data.split.stratify_by:
        feature = known.get(name)
        if feature is None:
            raise ConfigError(f"data.split.stratify_by: {name!r} is not a feature of the schema")
        if feature.kind == "numeric" and not feature.slice_bins:
            raise ConfigError(f"data.split.stratify_by: numeric feature {name!r} needs slice_bins (its strata)")
        features.append(feature)
    return features


def strata(df: pd.DataFrame, config: Config) -> np.ndarray:
    """Each row's stratum number: its label x its ``stratify_by`` groups."""
    columns = {config.data_schema.label.name: groups(df[config.data_schema.label.name])}
    columns.update((f.name, groups(df[f.name], f)) for f in stratify_features(config))
    return pd.DataFrame(columns).groupby(list(columns), sort=False).ngroup().to_numpy()


def in_split(df: pd.DataFrame, fraction: float, seed: int, config: Config) -> np.ndarray:
    """True for the rows the configured method puts in a held-out split of ``fraction``."""
    if config.data.split.method == "hash":
        return in_test_split(df, fraction, seed)
    return in_stratified_split(df, fraction, seed, strata(df, config))


def holds_validation(config: Config) -> bool:
    """Whether a validation split is held out: for a chosen decision threshold or for early stopping."""
    return config.training.threshold.strategy != "fixed" or config.training.early_stopping is not None


def streams(config: Config) -> bool:
    """Whether ``split_rows`` gives each row's split from that row alone, so batches can be split one by one."""
    return config.data.split.method == "hash"


def split_rows(rows: pd.DataFrame, config: Config) -> Splits:
    """The snapshot's rows split into train, validation (see ``holds_validation``) and test."""
    data, threshold = config.data, config.training.threshold
    is_test = in_split(rows, data.test_fraction, data.split_seed, config)
    train, test = rows[~is_test].reset_index(drop=True), rows[is_test].reset_index(drop=True)
    if not holds_validation(config):
        return Splits(train, train.iloc[:0], test)
    held = in_split(train, threshold.validation_fraction, data.split_seed + 1, config)
    return Splits(train[~held].reset_index(drop=True), train[held].reset_index(drop=True), test)


def report_features(config: Config) -> list[Feature]:
    """The columns the split report covers: every slice column, then the other ``stratify_by`` columns."""
    features = {n: config.data_schema.feature(n) for spec in config.slices for n in spec}
    features.update((f.name, f) for f in stratify_features(config))
    return list(features.values())


@dataclass(frozen=True)
class Tally:
    """What the split report needs of one split's rows: how many, how many positive, each report column's counts."""

    rows: int
    positives: int
    columns: dict[str, Counter[str]]

    def __add__(self, other: object) -> Tally:
        """The tally of both sets of rows together."""
        if not isinstance(other, Tally):
            return NotImplemented
        columns = {name: counts + other.columns[name] for name, counts in self.columns.items()}
        return Tally(self.rows + other.rows, self.positives + other.positives, columns)


def tally(rows: pd.DataFrame, config: Config) -> Tally:
    """The report's counts of ``rows``: the label's values and every report column's groups."""
    label = config.data_schema.label
    columns = {label.name: groups(rows[label.name])}
    columns.update((f.name, groups(rows[f.name], f)) for f in report_features(config))
    positives = int((rows[label.name] == label.positive).sum())
    return Tally(len(rows), positives, {name: _counts(values) for name, values in columns.items()})


def _counts(values: np.ndarray) -> Counter[str]:
    names, counts = np.unique(values, return_counts=True)
    return Counter({str(n): int(c) for n, c in zip(names, counts, strict=True)})


def _shares(counts: Counter[str], rows: int) -> dict[str, float]:
    return {value: round(counts[value] / rows, 6) for value in sorted(counts)}


def _largest_gap(train: dict[str, float], test: dict[str, float]) -> dict[str, Any]:
    gaps = {v: abs(train.get(v, 0.0) - test.get(v, 0.0)) for v in sorted(set(train) | set(test))}
    value = max(gaps, key=lambda v: gaps[v])
    return {"value": value, "gap": round(gaps[value], 6)}


def split_report(splits: Splits, config: Config) -> dict[str, Any]:
    """The report of whole splits (see ``tallied_report``)."""
    return tallied_report({name: tally(frame, config) for name, frame in splits._asdict().items()}, config)


def tallied_report(tallies: dict[str, Tally], config: Config) -> dict[str, Any]:
    """Per split (``train``, ``validation``, ``test``): rows, share of all rows, positive share, label shares and
    each report column's value shares; then per column (the label first) the value whose train and test shares
    differ most, and the largest of all. An empty validation split is left out.
    """
    label = config.data_schema.label
    named = {name: t for name, t in tallies.items() if t.rows or name != "validation"}
    total = sum(t.rows for t in named.values())
    parts = {
        name: {
            "rows": t.rows,
            "share": round(t.rows / total, 6) if total else None,
            # A multi-class label has no positive class: its shares are the label column's.
            "positive_share": round(t.positives / t.rows, 6) if t.rows and not label.is_multiclass else None,
            "columns": {column: _shares(counts, t.rows) for column, counts in t.columns.items()},
        }
        for name, t in named.items()
    }
    train, test = parts["train"]["columns"], parts["test"]["columns"]
    gaps = {c: _largest_gap(train[c], test[c]) for c in test} if tallies["train"].rows and tallies["test"].rows else {}
    largest = max(gaps, key=lambda c: gaps[c]["gap"], default=None)
    threshold = config.training.threshold
    return {
        "method": config.data.split.method,
        "stratify_by": config.data.split.stratify_by,
        "seed": config.data.split_seed,
        "test_fraction": config.data.test_fraction,
        "validation_fraction": threshold.validation_fraction if holds_validation(config) else None,
        "label": label.name,
        "splits": parts,
        "gaps": gaps,
        "max_gap": None if largest is None else {"column": largest, **gaps[largest]},
    }


def report_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The few figures of a split report that go into the transform's metadata."""
    return {
        "method": report["method"],
        "stratify_by": report["stratify_by"],
        "positive_share": {name: part["positive_share"] for name, part in report["splits"].items()},
        "max_gap": report["max_gap"],
    }
