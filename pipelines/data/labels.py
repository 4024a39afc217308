"""Label consistency: identical feature vectors with conflicting labels, and agreement between annotators.

Two rows with the same features and different labels mean the label is not a function of the features
as recorded: a labeling mistake, a feature that is not collected, or genuine noise. No model can get all
of them right. Where the data carries several labelers' own columns (``schema.label.annotators``), their
chance-corrected agreement says how well the label is defined: Cohen's kappa for two labelers, Fleiss'
kappa for more.

Each result lists its most ambiguous examples with the day and line they came from, and yields a check
that blocks when ``thresholds.validation`` sets a limit and only informs when it does not.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.config import Schema, ValidationThresholds
from pipelines.core.outputs import SOURCE_DS, SOURCE_ROW

# How a missing string may be spelled in a snapshot besides a real null (``str(None)``, ``str(nan)``).
MISSING_STRINGS = ("", "None", "nan", "NaN")
ROWS_PER_EXAMPLE = 5  # (ds, line) pairs listed for each example group
CONFLICTS_CHECK = "label_conflicts"
AGREEMENT_CHECK = "annotator_agreement"
BLOCK, INFO = "block", "info"
FLEISS_VARIANT = (
    "Fleiss' kappa for a varying number of annotations per row: rows with at least two annotations; each "
    "row's agreement uses its own count and the category shares pool all annotations (Fleiss 1971 exactly "
    "when every row has every annotation)"
)
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
    conflicts = label_conflicts(frame, schema, examples)
    report: dict[str, Any] = {"conflicts": conflicts}
    checks = [_conflicts_check(conflicts, thresholds.max_label_conflicts)]
    if schema.label.annotators:
        agreement = annotator_agreement(frame, schema.label.annotators, examples, label=schema.label.name)
        report["annotators"] = agreement
        checks.append(_agreement_check(agreement, thresholds.min_annotator_agreement))
    report["checks"] = checks
    return report


def label_conflicts(frame: pd.DataFrame, schema: Schema, examples: int = 10) -> dict[str, Any]:
    """Groups of rows with identical features (missing values equal to each other) and more than one label.

    Rows are grouped by a 64-bit hash of their features; the rows that land in a conflicting hash group
    are grouped again by their exact values, so a hash collision cannot invent a conflict.

    Returns:
        ``rows_in_conflict`` (rows in conflicting groups), ``minority_rows`` (those not carrying their
        group's most common label: errors even a perfect model makes), ``groups``, ``rows`` (all rows),
        ``share`` (rows_in_conflict / rows) and ``examples``: up to ``examples`` groups, the label split
        closest to even first, then the largest, each with its feature values, label counts and the
        (ds, line) of its first rows.
    """
    codes = _feature_codes(frame, schema)
    labels, _ = pd.factorize(frame[schema.label.name], use_na_sentinel=False)
    hashed, _ = pd.factorize(pd.util.hash_pandas_object(codes, index=False).to_numpy())
    suspects = np.flatnonzero(_mixed_labels(hashed, labels))
    exact = codes.iloc[suspects].groupby(list(codes.columns), sort=False).ngroup().to_numpy()
    keep = _mixed_labels(exact, labels[suspects])
    rows, group = suspects[keep], exact[keep]  # rows in ascending order

    per_group = pd.DataFrame({"group": group, "label": labels[rows], "row": rows})
    counts = per_group.groupby(["group", "label"]).size()
    size = counts.groupby(level="group").sum()
    top = counts.groupby(level="group").max()
    ranking = pd.DataFrame({"majority": top / size, "size": size, "first": per_group.groupby("group")["row"].min()})
    ranking = ranking.sort_values(["majority", "size", "first"], ascending=[True, False, True])
    total = len(frame)
    return {
        "rows_in_conflict": int(size.sum()),
        "minority_rows": int((size - top).sum()),
        "groups": int(len(size)),
        "rows": total,
        "share": float(size.sum() / total) if total else 0.0,
        "examples": [_conflict_example(frame, schema, rows[group == g]) for g in ranking.index[:examples]],
    }


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
    votes, categories = _annotation_codes(frame, columns)
    counts = _vote_counts(votes, len(categories))
    n_votes = counts.sum(axis=1)
    rated = n_votes >= 2
    result: dict[str, Any] = {
        "columns": list(columns),
        "absent_columns": [c for c in columns if c not in frame.columns],
        "rows": int(rated.sum()),
        "complete_rows": int((n_votes == len(columns)).sum()),
        "statistic": None,
        "kappa": None,
        "observed_agreement": None,
    }
    if len(columns) == 2:
        first, second = votes[rated, 0], votes[rated, 1]
        result["statistic"] = "cohen_kappa"
        result["kappa"] = cohen_kappa(first, second, len(categories))
        result["observed_agreement"] = _json_float(np.mean(first == second)) if rated.any() else None
    elif len(columns) > 2:
        observed, expected = _fleiss_parts(counts[rated])
        result["statistic"] = "fleiss_kappa"
        result["variant"] = FLEISS_VARIANT
        result["kappa"] = _kappa(observed, expected)
        result["observed_agreement"] = _json_float(observed)
        result["pairwise"] = [
            {
                "annotators": [columns[a], columns[b]],
                "rows": int(both.sum()),
                "kappa": cohen_kappa(votes[both, a], votes[both, b], len(categories)),
            }
            for a, b in combinations(range(len(columns)), 2)
            for both in [(votes[:, a] >= 0) & (votes[:, b] >= 0)]
        ]
    result["agreement_with_majority"] = _agreement_with_majority(votes, counts, columns)
    result["examples"] = _split_votes(frame, votes, counts, columns, categories, examples, label)
    return result


def cohen_kappa(first: np.ndarray, second: np.ndarray, n_categories: int) -> float | None:
    """Cohen's kappa of two annotators' category codes (same rows); None when undefined (no rows, or
    both always give the one same label)."""
    if len(first) == 0 or (np.all(first == first[0]) and np.all(second == first[0])):
        return None
    from sklearn.metrics import cohen_kappa_score

    return _json_float(cohen_kappa_score(first, second, labels=np.arange(n_categories)))


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


def _feature_codes(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """One integer code per distinct value of each feature, -1 for every kind of missing value.

    Factorizing also makes 0.0 and -0.0 one value (their bits, which the hash sees, differ).
    """
    return pd.DataFrame(
        {
            f.name: pd.factorize(frame[f.name] if f.kind == "numeric" else _missing_as_null(frame[f.name]))[0]
            for f in schema.features
        }
    )


def _missing_as_null(column: pd.Series) -> pd.Series:
    return column.where(~column.isin(MISSING_STRINGS))


def _mixed_labels(groups: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Whether each row's group holds more than one label."""
    by_group = pd.Series(labels).groupby(groups)
    return (by_group.transform("min") != by_group.transform("max")).to_numpy()


def _conflict_example(frame: pd.DataFrame, schema: Schema, members: np.ndarray) -> dict[str, Any]:
    first = frame.iloc[members[0]]
    split = frame[schema.label.name].iloc[members].value_counts(dropna=False)
    return {
        "features": {
            f.name: _json_value(first[f.name], missing=MISSING_STRINGS if f.kind == "categorical" else ())
            for f in schema.features
        },
        "size": len(members),
        "majority_share": float(split.iloc[0] / len(members)),
        "labels": {str(_json_value(value)): int(n) for value, n in split.items()},
        "rows": _sources(frame, members[:ROWS_PER_EXAMPLE]),
    }


def _annotation_codes(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, pd.Index]:
    """Rows x annotators category codes (-1: no annotation), with the categories all annotators share."""
    stacked = pd.concat(
        [
            _missing_as_null(frame[c].astype(object)) if c in frame.columns else pd.Series([None] * len(frame))
            for c in columns
        ],
        ignore_index=True,
    )
    codes, categories = pd.factorize(stacked)
    return codes.reshape(len(columns), len(frame)).T, categories


def _vote_counts(votes: np.ndarray, n_categories: int) -> np.ndarray:
    """Rows x categories: how many annotators gave each category to each row."""
    counts = np.zeros((len(votes), n_categories), dtype=np.int64)
    rows = np.arange(len(votes))
    for column in votes.T:
        given = column >= 0
        counts[rows[given], column[given]] += 1
    return counts


def _agreement_with_majority(votes: np.ndarray, counts: np.ndarray, columns: list[str]) -> dict[str, Any]:
    """Per annotator, how often their label is the most common one among the *other* annotators' labels.

    Leaving the annotator out keeps them from voting for themselves (with two annotators this is simply
    their agreement with the other). Rows where the others tie, or did not answer, are not counted.
    """
    result = {}
    for j, name in enumerate(columns):
        answered = np.flatnonzero(votes[:, j] >= 0)
        mine = votes[answered, j]
        others = counts[answered].copy()
        others[np.arange(len(answered)), mine] -= 1
        top = others.max(axis=1, initial=0)
        clear = ((others == top[:, None]).sum(axis=1) == 1) & (top > 0)
        agree = clear & (others[np.arange(len(answered)), mine] == top)
        result[name] = {
            "rows": int(clear.sum()),
            "share": float(agree.sum() / clear.sum()) if clear.any() else None,
        }
    return result


def _split_votes(
    frame: pd.DataFrame,
    votes: np.ndarray,
    counts: np.ndarray,
    columns: list[str],
    categories: pd.Index,
    examples: int,
    label: str | None,
) -> list[dict[str, Any]]:
    """The rows with the most split votes: the lowest share for the most common label, then the most votes."""
    n_votes = counts.sum(axis=1)
    split = np.flatnonzero((n_votes >= 2) & (counts.max(axis=1, initial=0) < n_votes))
    majority = counts[split].max(axis=1, initial=0) / n_votes[split]
    chosen = split[np.lexsort((split, -n_votes[split], majority))[:examples]]
    listed = []
    for row in chosen:
        (where,) = _sources(frame, np.array([row]))
        listed.append(
            {
                **where,
                "votes": {
                    c: None if v < 0 else _json_value(categories[v]) for c, v in zip(columns, votes[row], strict=True)
                },
                "majority_share": float(counts[row].max() / n_votes[row]),
                **({"label": _json_value(frame[label].iloc[row])} if label and label in frame.columns else {}),
            }
        )
    return listed


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
