"""Labels: something to learn from, identical feature vectors with conflicting labels, agreement between annotators.

A window must hold the binary label's positive value and another one, or two classes of a multi-class label:
otherwise the positive value is likely spelt otherwise than the data writes it, and training would fit one class.

Two rows with the same features and different labels mean the label is not a function of the features
as recorded: a labeling mistake, a feature that is not collected, or genuine noise. No model can get all
of them right. Where the data carries several labelers' own columns (``schema.label.annotators``), their
chance-corrected agreement says how well the label is defined: Cohen's kappa for two labelers, Fleiss'
kappa for more.

Each result lists its most ambiguous examples with the day and line they came from, and yields a check
that blocks when ``thresholds.validation`` sets a limit and only informs when it does not.

Both stream: ``LabelTally`` takes the window batch by batch and keeps one count per distinct (feature
vector, label) pair, keyed by two independent 64-bit hashes of the features; the example rows are found
in a second pass over the batches, only when there are conflicts. ``AgreementTally`` keeps counts (each
pair of annotators' confusion matrix, each category's votes) and the most split rows seen so far.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.config import Label, Schema, ValidationThresholds
from pipelines.core.outputs import SOURCE_DS, SOURCE_ROW

# How a missing string may be spelled in a snapshot besides a real null (``str(None)``, ``str(nan)``).
MISSING_STRINGS = ("", "None", "nan", "NaN")
ROWS_PER_EXAMPLE = 5  # (ds, line) pairs listed for each example group
CONFLICTS_CHECK = "label_conflicts"
AGREEMENT_CHECK = "annotator_agreement"
CLASSES_CHECK = "label_classes"
BLOCK, INFO = "block", "info"
FLEISS_VARIANT = (
    "Fleiss' kappa for a varying number of annotations per row: rows with at least two annotations; each "
    "row's agreement uses its own count and the category shares pool all annotations (Fleiss 1971 exactly "
    "when every row has every annotation)"
)
# The second feature hash's key (16 bytes): independent of pandas' default one, so a collision needs both.
SECOND_HASH_KEY = "label-conflicts2"
# Landis & Koch (1977): the usual words for a kappa, as (upper bound, word).
_KAPPA_WORDS = ((0.0, "poor"), (0.2, "slight"), (0.4, "fair"), (0.6, "moderate"), (0.8, "substantial"))


def label_consistency(
    frame: pd.DataFrame, schema: Schema, thresholds: ValidationThresholds, examples: int = 10
) -> dict[str, Any]:
    """Count rows whose identical features carry conflicting labels, and measure the annotators' agreement.

    Args:
        frame: the snapshot: the schema's features and label, the annotator columns when declared, and
            ``SOURCE_DS`` / ``SOURCE_ROW`` (the day and line of each row).
        schema: which columns are features, which is the label and which hold each annotator's label.
        thresholds: ``max_label_conflicts`` and ``min_annotator_agreement``; None makes a check report-only.
        examples: how many example groups (and annotated rows) to list, most ambiguous first.

    Returns:
        A JSON-serialisable dict: ``conflicts`` (see ``label_conflicts``), ``annotators`` when the schema
        declares them (see ``annotator_agreement``) and ``checks``: one ``{name, severity, success,
        message}`` per result, severity ``block`` when its threshold is set and ``info`` when it is not.
    """
    tally = LabelTally(schema, examples)
    tally.add(frame)
    return tally.report(lambda: [frame], thresholds)


def label_conflicts(frame: pd.DataFrame, schema: Schema, examples: int = 10) -> dict[str, Any]:
    """Groups of rows with identical features (missing values equal to each other) and more than one label.

    Returns:
        See ``LabelTally.conflicts``.
    """
    tally = LabelTally(schema, examples)
    tally.add(frame)
    return tally.conflicts(lambda: [frame])


class LabelTally:
    """Label consistency over a window read batch by batch: ``add`` each batch in order, then ``report``.

    Holds one row per distinct (features, label) pair (two feature hashes, the label's code, its count and
    the window position of its first row) and, when the schema declares annotators, an ``AgreementTally``;
    never the rows themselves. ``examples`` is how many example groups (and annotated rows) to list.
    """

    def __init__(self, schema: Schema, examples: int = 10) -> None:
        self.schema = schema
        self.examples = examples
        self.rows = 0
        self._label_codes: dict[Any, int] = {}
        self._label_values: list[Any] = []
        self._pairs = _pair_counts(np.empty(0, np.uint64), np.empty(0, np.uint64), np.empty(0, np.int64), 0)
        label = schema.label
        self._agreement = AgreementTally(label.annotators, examples, label.name) if label.annotators else None

    def add(self, batch: pd.DataFrame) -> None:
        """Count one batch (the window's next rows)."""
        first, second = _feature_keys(batch, self.schema)
        pairs = _pair_counts(first, second, self._codes(batch[self.schema.label.name]), self.rows)
        self._pairs = (
            pd.concat([self._pairs, pairs], ignore_index=True)
            .groupby(["first_hash", "second_hash", "label"], sort=False, as_index=False)
            .agg(count=("count", "sum"), first=("first", "min"))
        )
        if self._agreement is not None:
            self._agreement.add(batch)
        self.rows += len(batch)

    def report(self, read: Callable[[], Iterable[pd.DataFrame]], thresholds: ValidationThresholds) -> dict[str, Any]:
        """The label consistency report (see ``label_consistency``); ``read`` gives the same batches again."""
        conflicts = self.conflicts(read)
        report: dict[str, Any] = {"conflicts": conflicts}
        checks = [_conflicts_check(conflicts, thresholds.max_label_conflicts)]
        if self._agreement is not None:
            agreement = self._agreement.result()
            report["annotators"] = agreement
            checks.append(_agreement_check(agreement, thresholds.min_annotator_agreement))
        report["checks"] = checks
        return report

    def classes_check(self) -> dict[str, Any]:
        """Whether the window holds something to learn (see ``_classes_check``), from the rows per label value."""
        counts = self._pairs.groupby("label", sort=False)["count"].sum()
        values = [(self._label_values[code], int(n)) for code, n in counts.items()]
        found = sorted(((str(v), n) for v, n in values if not _is_null(v)), key=lambda item: -item[1])
        return _classes_check(self.schema.label, dict(found), self.rows)

    def conflicts(self, read: Callable[[], Iterable[pd.DataFrame]]) -> dict[str, Any]:
        """Groups of rows with identical features (missing values equal to each other) and more than one label.

        Rows are grouped by two independent 64-bit hashes of their features (numeric values equal as
        numbers, so 0.0 and -0.0 are one value; every spelling of a missing value equal), so two groups
        merge only if both hashes collide. ``read`` is called again, once, only when there are conflicts
        to list, to find the example groups' rows.

        Returns:
            ``rows_in_conflict`` (rows in conflicting groups), ``minority_rows`` (those not carrying their
            group's most common label: errors even a perfect model makes), ``groups``, ``rows`` (all rows),
            ``share`` (rows_in_conflict / rows) and ``examples``: up to ``self.examples`` groups, the label split
            closest to even first, then the largest, each with its feature values, label counts and the
            (ds, line) of its first rows.
        """
        pairs = self._pairs
        keys = ["first_hash", "second_hash"]
        mixed = pairs[pairs.groupby(keys, sort=False)["label"].transform("size").to_numpy() > 1]
        by_group = mixed.groupby(keys, sort=False)
        ranking = pd.DataFrame(
            {"size": by_group["count"].sum(), "top": by_group["count"].max(), "first": by_group["first"].min()}
        )
        ranking["majority"] = ranking["top"] / ranking["size"]
        ranking = ranking.sort_values(["majority", "size", "first"], ascending=[True, False, True])
        chosen = ranking.iloc[: self.examples]
        listed = self._examples(read, chosen, mixed) if len(chosen) else []
        rows_in_conflict = int(ranking["size"].sum())
        return {
            "rows_in_conflict": rows_in_conflict,
            "minority_rows": int((ranking["size"] - ranking["top"]).sum()),
            "groups": len(ranking),
            "rows": self.rows,
            "share": float(rows_in_conflict / self.rows) if self.rows else 0.0,
            "examples": listed,
        }

    def _codes(self, labels: pd.Series) -> np.ndarray:
        """The labels' codes, the same in every batch (every kind of null is one label)."""
        codes, uniques = pd.factorize(labels, use_na_sentinel=False)
        mapping = np.empty(len(uniques), dtype=np.int64)
        for i, value in enumerate(uniques):
            key = None if _is_null(value) else value
            if key not in self._label_codes:
                self._label_codes[key] = len(self._label_values)
                self._label_values.append(value)
            mapping[i] = self._label_codes[key]
        return mapping[codes]

    def _examples(
        self, read: Callable[[], Iterable[pd.DataFrame]], chosen: pd.DataFrame, mixed: pd.DataFrame
    ) -> list[dict[str, Any]]:
        """The chosen groups as examples, their first rows found by reading the batches again."""
        wanted = {key: i for i, key in enumerate(chosen.index)}
        features: list[dict[str, Any] | None] = [None] * len(wanted)
        sources: list[list[dict[str, Any]]] = [[] for _ in wanted]
        for batch in read():
            first, second = _feature_keys(batch, self.schema)
            candidates = np.flatnonzero(np.isin(first, chosen.index.get_level_values("first_hash")))
            for position in candidates.tolist():
                slot = wanted.get((first[position], second[position]), -1)
                if slot < 0:
                    continue
                if features[slot] is None:
                    row = batch.iloc[position]
                    features[slot] = {
                        f.name: _json_value(row[f.name], missing=MISSING_STRINGS if f.kind == "categorical" else ())
                        for f in self.schema.features
                    }
                if len(sources[slot]) < ROWS_PER_EXAMPLE:
                    sources[slot].extend(_sources(batch, np.array([position])))
            if all(len(s) >= min(ROWS_PER_EXAMPLE, n) for s, n in zip(sources, chosen["size"], strict=True)):
                break
        listed = []
        for slot, (key, group) in enumerate(chosen.iterrows()):
            split = mixed[(mixed["first_hash"] == key[0]) & (mixed["second_hash"] == key[1])]
            split = split.sort_values(["count", "first"], ascending=[False, True])
            listed.append(
                {
                    "features": features[slot],
                    "size": int(group["size"]),
                    "majority_share": float(group["majority"]),
                    "labels": {
                        str(_json_value(self._label_values[code])): int(n)
                        for code, n in zip(split["label"], split["count"], strict=True)
                    },
                    "rows": sources[slot],
                }
            )
        return listed


def annotator_agreement(
    frame: pd.DataFrame, columns: list[str], examples: int = 10, label: str | None = None
) -> dict[str, Any]:
    """How far the annotators' own labels agree, beyond chance.

    Missing annotations (null, or spelled as in ``MISSING_STRINGS``) are left out: Cohen's kappa uses the
    rows where both annotators answered; Fleiss' kappa the rows with at least two annotations (see
    ``FLEISS_VARIANT``). A declared column absent from ``frame`` counts as wholly missing.

    Returns:
        ``columns``, ``absent_columns``, ``rows`` (with at least two annotations), ``complete_rows`` (with
        all), ``statistic`` (``cohen_kappa``, ``fleiss_kappa``, or None for a single annotator), ``kappa``
        (None when undefined), ``observed_agreement`` (share of agreeing pairs of annotations),
        ``pairwise`` (Cohen's kappa of each pair, with three or more), ``agreement_with_majority`` (per
        annotator: the rows where the others have one most common label, and the share where theirs
        matches it) and ``examples``: the rows with the most split votes, with their ds, line and votes.
    """
    tally = AgreementTally(columns, examples, label)
    tally.add(frame)
    return tally.result()


class AgreementTally:
    """Annotator agreement over a window read batch by batch: ``add`` each batch in order, then ``result``.

    Holds counts only (confusion matrices of each pair of annotators, each category's votes, per annotator
    agreement with the others' majority) and the ``examples`` most split rows so far.
    """

    def __init__(self, columns: list[str], examples: int = 10, label: str | None = None) -> None:
        self.columns, self.examples, self.label = list(columns), examples, label
        self.absent: list[str] | None = None
        self.rows = 0
        self._codes: dict[Any, int] = {}
        self._categories: list[Any] = []
        self._rated = self._complete = 0
        # Rated rows' agreeing pairs of annotations, summed per number of annotations (kept in integers, so
        # the result does not depend on how the window was cut into batches).
        self._agreeing: Counter[int] = Counter()
        self._votes = np.zeros(0, dtype=np.int64)  # per category, over rated rows
        self._pairs: dict[tuple[int, int], Counter[tuple[int, int]]] = {
            pair: Counter() for pair in combinations(range(len(columns)), 2)
        }
        self._majority = np.zeros((len(columns), 2), dtype=np.int64)  # per annotator: clear rows, agreeing rows
        self._split: list[dict[str, Any]] = []

    def add(self, batch: pd.DataFrame) -> None:
        """Count one batch (the window's next rows)."""
        if self.absent is None:
            self.absent = [c for c in self.columns if c not in batch.columns]
        votes = self._vote_codes(batch)
        counts = _vote_counts(votes, len(self._categories))
        n_votes = counts.sum(axis=1)
        rated = n_votes >= 2
        self._rated += int(rated.sum())
        self._complete += int((n_votes == len(self.columns)).sum())
        if rated.any():
            rated_counts = counts[rated]
            n = n_votes[rated]
            agreeing = (rated_counts * (rated_counts - 1)).sum(axis=1)
            for size, total in pd.Series(agreeing).groupby(n).sum().items():
                self._agreeing[int(size)] += int(total)
            self._votes = np.pad(self._votes, (0, len(self._categories) - len(self._votes)))
            self._votes += rated_counts.sum(axis=0)
        for (a, b), confusion in self._pairs.items():
            both = (votes[:, a] >= 0) & (votes[:, b] >= 0)
            confusion.update(zip(votes[both, a].tolist(), votes[both, b].tolist(), strict=True))
        self._majority += _agreement_with_majority(votes, counts)
        self._split = _most_split([*self._split, *self._split_rows(batch, votes, counts)], self.examples)
        self.rows += len(batch)

    def result(self) -> dict[str, Any]:
        """The agreement (see ``annotator_agreement``)."""
        columns, n_categories = self.columns, len(self._categories)
        order = sorted(range(n_categories), key=lambda code: str(self._categories[code]))  # whatever the batches
        result: dict[str, Any] = {
            "columns": list(columns),
            "absent_columns": list(self.absent or []),
            "rows": self._rated,
            "complete_rows": self._complete,
            "statistic": None,
            "kappa": None,
            "observed_agreement": None,
        }
        if len(columns) == 2:
            confusion = _confusion(self._pairs[(0, 1)], order)
            result["statistic"] = "cohen_kappa"
            result["kappa"] = _cohen_from_confusion(confusion)
            result["observed_agreement"] = float(np.trace(confusion) / confusion.sum()) if self._rated else None
        elif len(columns) > 2:
            observed = expected = None
            if self._rated:
                votes = np.pad(self._votes, (0, n_categories - len(self._votes)))[order]
                observed = sum(n / (size * (size - 1)) for size, n in sorted(self._agreeing.items())) / self._rated
                expected = float(np.sum((votes / votes.sum()) ** 2))
            result["statistic"] = "fleiss_kappa"
            result["variant"] = FLEISS_VARIANT
            result["kappa"] = _kappa(observed, expected)
            result["observed_agreement"] = _json_float(observed)
            result["pairwise"] = [
                {
                    "annotators": [columns[a], columns[b]],
                    "rows": int(sum(confusion.values())),
                    "kappa": _cohen_from_confusion(_confusion(confusion, order)),
                }
                for (a, b), confusion in self._pairs.items()
            ]
        result["agreement_with_majority"] = {
            name: {"rows": int(clear), "share": float(agree / clear) if clear else None}
            for name, (clear, agree) in zip(columns, self._majority.tolist(), strict=True)
        }
        result["examples"] = [
            {
                "ds": row["ds"],
                "line": row["line"],
                "votes": {
                    c: None if v < 0 else _json_value(self._categories[v])
                    for c, v in zip(columns, row["votes"], strict=True)
                },
                "majority_share": row["majority_share"],
                **({"label": row["label"]} if "label" in row else {}),
            }
            for row in self._split
        ]
        return result

    def _vote_codes(self, batch: pd.DataFrame) -> np.ndarray:
        """Rows x annotators category codes (-1: no annotation), the same in every batch."""
        present = [c for c in self.columns if c in batch.columns]
        votes = np.full((len(batch), len(self.columns)), -1, dtype=np.int64)
        if not present:
            return votes
        stacked = pd.concat([_missing_as_null(batch[c].astype(object)) for c in present], ignore_index=True)
        codes, uniques = pd.factorize(stacked)
        mapping = np.empty(len(uniques) + 1, dtype=np.int64)
        mapping[-1] = -1  # code -1 (missing) stays -1
        for i, value in enumerate(uniques):
            if value not in self._codes:
                self._codes[value] = len(self._categories)
                self._categories.append(value)
            mapping[i] = self._codes[value]
        known = mapping[codes].reshape(len(present), len(batch))
        for j, c in enumerate(present):
            votes[:, self.columns.index(c)] = known[j]
        return votes

    def _split_rows(self, batch: pd.DataFrame, votes: np.ndarray, counts: np.ndarray) -> list[dict[str, Any]]:
        """This batch's most split rows (see ``_most_split``), with their window positions."""
        n_votes = counts.sum(axis=1)
        split = np.flatnonzero((n_votes >= 2) & (counts.max(axis=1, initial=0) < n_votes))
        majority = counts[split].max(axis=1, initial=0) / n_votes[split]
        chosen = split[np.lexsort((split, -n_votes[split], majority))[: self.examples]]
        rows = []
        for row in chosen.tolist():
            (where,) = _sources(batch, np.array([row]))
            rows.append(
                {
                    **where,
                    "position": self.rows + row,
                    "votes": votes[row].tolist(),
                    "n_votes": int(n_votes[row]),
                    "majority_share": float(counts[row].max() / n_votes[row]),
                    **(
                        {"label": _json_value(batch[self.label].iloc[row])}
                        if self.label and self.label in batch.columns
                        else {}
                    ),
                }
            )
        return rows


def _most_split(rows: list[dict[str, Any]], examples: int) -> list[dict[str, Any]]:
    """The rows with the most split votes: the lowest share for the most common label, then the most votes,
    then the first in the window."""
    return sorted(rows, key=lambda r: (r["majority_share"], -r["n_votes"], r["position"]))[:examples]


def _confusion(pairs: Counter[tuple[int, int]], order: list[int]) -> np.ndarray:
    """The confusion matrix of two annotators' (first, second) code counts, categories in ``order``."""
    matrix = np.zeros((len(order), len(order)), dtype=np.int64)
    for (i, j), n in pairs.items():
        matrix[i, j] = n
    return matrix[np.ix_(order, order)]


def _cohen_from_confusion(confusion: np.ndarray) -> float | None:
    """Cohen's kappa of a confusion matrix (first annotator's categories by rows), computed as scikit-learn
    does; None when undefined (no rows, or both always give the one same label)."""
    total = confusion.sum()
    if total == 0 or (np.count_nonzero(confusion) == 1 and np.count_nonzero(np.diag(confusion)) == 1):
        return None
    expected = np.outer(confusion.sum(axis=0), confusion.sum(axis=1)) / total
    disagree = 1 - np.eye(len(confusion), dtype=int)
    denominator = np.sum(disagree * expected)
    return None if denominator == 0 else _json_float(1 - np.sum(disagree * confusion) / denominator)


def cohen_kappa(first: np.ndarray, second: np.ndarray, n_categories: int) -> float | None:
    """Cohen's kappa of two annotators' category codes (same rows); None when undefined (no rows, or
    both always give the one same label)."""
    confusion = np.zeros((n_categories, n_categories), dtype=np.int64)
    np.add.at(confusion, (np.asarray(first), np.asarray(second)), 1)
    return _cohen_from_confusion(confusion)


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa of a rows x categories table of how many annotators gave each category.

    Rows may have different numbers of annotations (see ``FLEISS_VARIANT``); rows with fewer than two
    are ignored. None when undefined (no such rows, or a single category throughout).
    """
    counts = np.asarray(counts, dtype=float)
    return _kappa(*_fleiss_parts(counts[counts.sum(axis=1) >= 2]))


def _fleiss_parts(counts: np.ndarray) -> tuple[float | None, float | None]:
    """(observed, chance) agreement of a table whose rows all have at least two annotations."""
    if len(counts) == 0:
        return None, None
    n = counts.sum(axis=1)
    observed = float(np.mean((counts * (counts - 1)).sum(axis=1) / (n * (n - 1))))
    shares = counts.sum(axis=0) / n.sum()
    return observed, float(np.sum(shares**2))


def _kappa(observed: float | None, expected: float | None) -> float | None:
    if observed is None or expected is None or np.isclose(expected, 1.0):
        return None
    return float((observed - expected) / (1.0 - expected))


def _feature_keys(frame: pd.DataFrame, schema: Schema) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of each row's features, equal for rows with identical features.

    Numeric values are hashed as float64 with 0.0 for -0.0 and one NaN for every missing value (pandas'
    hash of a float is a bijection of its bits); categorical ones as strings, with every spelling of a
    missing value (``MISSING_STRINGS``, null) as "", each distinct value hashed once with each key.
    """
    columns: dict[str, np.ndarray] = {}
    second = np.full(len(frame), np.uint64(0xCBF29CE484222325))
    for f in schema.features:
        column = frame[f.name]
        if f.kind == "numeric":
            numbers = column.to_numpy(dtype="float64", na_value=np.nan) + 0.0  # -0.0 + 0.0 is 0.0
            columns[f.name] = pd.util.hash_array(np.where(np.isnan(numbers), np.nan, numbers))
            other = columns[f.name] * np.uint64(0x9E3779B97F4A7C15) + np.uint64(1)  # another bijection
        else:
            codes, uniques = pd.factorize(_missing_as_null(column))  # every missing value: -1, the last name
            names = np.append(np.asarray(uniques, dtype=object).astype(str), "").astype(object)
            columns[f.name] = pd.util.hash_array(names, categorize=False)[codes]
            other = pd.util.hash_array(names, hash_key=SECOND_HASH_KEY, categorize=False)[codes]
        second = (second * np.uint64(0x100000001B3)) ^ other
    first = pd.util.hash_pandas_object(pd.DataFrame(columns, index=pd.RangeIndex(len(frame))), index=False)
    return first.to_numpy().astype(np.uint64), second


def _pair_counts(first: np.ndarray, second: np.ndarray, labels: np.ndarray, offset: int) -> pd.DataFrame:
    """One row per distinct (features, label) pair: its count and the window position of its first row."""
    rows = pd.DataFrame(
        {
            "first_hash": first,
            "second_hash": second,
            "label": labels,
            "count": np.ones(len(labels), dtype=np.int64),
            "first": offset + np.arange(len(labels), dtype=np.int64),
        }
    )
    return rows.groupby(["first_hash", "second_hash", "label"], sort=False, as_index=False).agg(
        count=("count", "sum"), first=("first", "min")
    )


def _is_null(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _missing_as_null(column: pd.Series) -> pd.Series:
    return column.where(~column.isin(MISSING_STRINGS))


def _vote_counts(votes: np.ndarray, n_categories: int) -> np.ndarray:
    """Rows x categories: how many annotators gave each category to each row."""
    counts = np.zeros((len(votes), n_categories), dtype=np.int64)
    rows = np.arange(len(votes))
    for column in votes.T:
        given = column >= 0
        counts[rows[given], column[given]] += 1
    return counts


def _agreement_with_majority(votes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per annotator (rows), how often their label is the most common one among the *other* annotators' labels:
    the rows where the others have one most common label, and those where it is the annotator's.

    Leaving the annotator out keeps them from voting for themselves (with two annotators this is simply
    their agreement with the other). Rows where the others tie, or did not answer, are not counted.
    """
    result = np.zeros((votes.shape[1], 2), dtype=np.int64)
    for j in range(votes.shape[1]):
        answered = np.flatnonzero(votes[:, j] >= 0)
        mine = votes[answered, j]
        others = counts[answered].copy()
        others[np.arange(len(answered)), mine] -= 1
        top = others.max(axis=1, initial=0)
        clear = ((others == top[:, None]).sum(axis=1) == 1) & (top > 0)
        agree = clear & (others[np.arange(len(answered)), mine] == top)
        result[j] = clear.sum(), agree.sum()
    return result


def _sources(frame: pd.DataFrame, positions: np.ndarray) -> list[dict[str, Any]]:
    days = frame[SOURCE_DS].iloc[positions]  # not to_numpy() first: that converts the whole column
    lines = frame[SOURCE_ROW].iloc[positions]
    return [{"ds": str(d), "line": int(n)} for d, n in zip(days, lines, strict=True)]


def _json_value(value: Any, missing: tuple[str, ...] = ()) -> Any:
    """A plain Python value for JSON: None for nulls (and the ``missing`` spellings), floats and ints."""
    if value is None or (not isinstance(value, str) and pd.isna(value)) or value in missing:
        return None
    return value.item() if isinstance(value, np.generic) else value


def _json_float(value: Any) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def _percent(share: float) -> str:
    return f"{share * 100:.4g}%"


def _kappa_word(kappa: float) -> str:
    return next((word for bound, word in _KAPPA_WORDS if kappa <= bound), "almost perfect")


def _classes_check(label: Label, counts: dict[str, int], rows: int) -> dict[str, Any]:
    """Whether the window holds something to learn: the positive value and another one (binary), or every class."""
    shown = [f"{value!r} ({n:,})" for value, n in counts.items()]
    seen = ", ".join(shown[:5] + (["..."] if len(shown) > 5 else [])) or "none"
    if label.is_multiclass:
        absent = [c for c in label.classes if c not in counts]
        problem = (
            f"the class(es) {absent} of schema.label.values occur in no row: the model could not learn them, nor be "
            "judged on them (is each spelled as the data writes it? or widen data.window_days)"
            if absent
            else None
        )
    elif label.positive not in counts:
        problem = (
            f"the positive value {label.positive!r} occurs in no row (is schema.label.positive spelled as the "
            "data writes it?)"
        )
    else:
        problem = None if len(counts) >= 2 else f"every row carries the positive value {label.positive!r}"
    where = f"values over {rows:,} rows: {seen}"
    return {
        "name": CLASSES_CHECK,
        "severity": BLOCK,
        "success": problem is None,
        "message": f"label {label.name!r}: {problem}; {where}" if problem else f"label {label.name!r}: {where}",
    }


def _conflicts_check(conflicts: dict[str, Any], limit: float | None) -> dict[str, Any]:
    rows, share = conflicts["rows"], conflicts["share"]
    bound = f"limit {_percent(limit)}" if limit is not None else "no limit set: report only"
    if conflicts["rows_in_conflict"]:
        message = (
            f"{conflicts['rows_in_conflict']:,} of {rows:,} rows ({share:.2%}) are in {conflicts['groups']:,} "
            f"groups of identical features with conflicting labels ({bound}); "
            f"{conflicts['minority_rows']:,} of them ({conflicts['minority_rows'] / rows:.2%} of all rows) differ "
            "from their group's most common label"
        )
    else:
        message = (
            f"no conflicting labels: no two of the {rows:,} rows have identical features and different labels ({bound})"
        )
    return {
        "name": CONFLICTS_CHECK,
        "severity": INFO if limit is None else BLOCK,
        "success": limit is None or share <= limit,
        "message": message,
    }


def _agreement_check(agreement: dict[str, Any], minimum: float | None) -> dict[str, Any]:
    columns, kappa, rows = agreement["columns"], agreement["kappa"], agreement["rows"]
    bound = f"minimum {minimum:.2f}" if minimum is not None else "no minimum set: report only"
    names = ", ".join(columns)
    if len(columns) < 2:
        success, message = minimum is None, f"only one annotator column ({names}): agreement cannot be measured"
    elif rows == 0:
        success = minimum is None
        message = f"no row has labels from two of the annotators ({names}): agreement cannot be measured ({bound})"
    elif kappa is None:
        success = True
        message = (
            f"the annotators ({names}) give one and the same label to all {rows:,} rows they share: "
            "agreement is total (kappa is undefined)"
        )
    else:
        success = minimum is None or kappa >= minimum
        statistic = "Cohen's" if agreement["statistic"] == "cohen_kappa" else "Fleiss'"
        message = (
            f"{statistic} kappa {kappa:.3f} ({_kappa_word(kappa)}) between {len(columns)} annotators ({names}) "
            f"over {rows:,} rows with at least two annotations ({bound}); "
            f"{agreement['observed_agreement']:.1%} of pairs of annotations agree"
        )
        ranked = [(v["share"], c) for c, v in agreement["agreement_with_majority"].items() if v["share"] is not None]
        if len(columns) > 2 and ranked:
            share, name = min(ranked)
            message += f"; {name} agrees least with the others' majority ({share:.1%})"
        if agreement["absent_columns"]:
            message += f"; columns absent from the data: {', '.join(agreement['absent_columns'])}"
    return {
        "name": AGREEMENT_CHECK,
        "severity": INFO if minimum is None else BLOCK,
        "success": bool(success),
        "message": message,
    }
