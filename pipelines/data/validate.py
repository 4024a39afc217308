"""Validation: Great Expectations 1.x run on the snapshot, judged per partition and over the window.

The suite is generated from the config's schema (each column's type, nulls against its
``max_missing``, value set or range with the ``thresholds.validation.values`` tolerance, the label's
values, the window's row count) and then refined by the use case's expectations file (the config's
``expectations`` key), which can add any GX expectation, change one's arguments, tolerance or
severity, or turn one off. Each row-level expectation's unexpected rows (GX's ``unexpected_index_list``)
are counted per partition, so one bad day is judged against its own rows instead of being diluted by
the window. A ``block`` expectation that fails anywhere blocks the run; a ``warn`` one is recorded as
a warning. ``validation.json`` is the compact summary (per expectation and per partition) the run
card shows; Data Docs are written beside it.

Memory is bounded: the window is read in batches of whole partitions (the snapshot's row groups) of
at most ``BATCH_ROWS`` rows. A window that fits in one batch (the Adult demo at 1x and 10x) gets one
GX run with every expectation, as before. Over several batches, GX runs the row-level expectations
on each batch and their counts add up; the aggregates that combine exactly (``EXACT_AGGREGATES``:
row count, a numeric column's mean, min, max, sum, non-null share) are computed batch by batch; any
other aggregate (and a row-level one whose rows depend on each other, ``CROSS_ROW``) is judged on a
deterministic sample of at most ``BATCH_ROWS`` rows, and its entry and messages say so.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml

from pipelines.core.artifacts import fingerprint_json, write_json_atomic
from pipelines.core.config import Config
from pipelines.core.context import RunContext
from pipelines.core.contracts import PipelineError, StageName, Status
from pipelines.core.outputs import SOURCE_DS, IngestOutput, ValidationOutput, require
from pipelines.data.labels import LabelTally

log = logging.getLogger(__name__)

NUMERIC_TYPES = ["float64", "Float64", "float32", "int64", "Int64"]
STRING_TYPES = ["str"]
EXAMPLES = 5
# Rows validated at once (whole partitions; a bigger partition is a batch of its own). Adult's 61-day window at
# 10x (488k rows) is one batch, validated in one GX run as before (peak ~1 GB); 100x (4.9M) is ten batches.
BATCH_ROWS = 500_000
# Aggregates that combine exactly over batches, with the statistic each one observes.
EXACT_AGGREGATES = {
    "expect_table_row_count_to_be_between": "rows",
    "expect_table_row_count_to_equal": "rows",
    "expect_column_mean_to_be_between": "mean",
    "expect_column_min_to_be_between": "min",
    "expect_column_max_to_be_between": "max",
    "expect_column_sum_to_be_between": "sum",
    "expect_column_proportion_of_non_null_values_to_be_between": "non_null_share",
}
# Row-level in GX, but whether a row is unexpected depends on the window's other rows.
CROSS_ROW = frozenset(
    {
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
        "expect_column_values_to_be_increasing",
        "expect_column_values_to_be_decreasing",
    }
)
Severity = Literal["block", "warn"]
Judged = Literal["batch", "exact", "sample"]


class ValidationFailed(PipelineError):
    """The snapshot broke a blocking expectation; the message names each column, partition and count."""


class ExpectationsFileError(PipelineError):
    """The expectations file cannot be read or names an unknown expectation, column or key."""


@dataclass(frozen=True)
class Rule:
    """One expectation with how it is judged: severity and the tolerated share of unexpected rows.

    ``window`` and ``partition`` are the largest shares of rows that may break a row-level
    expectation over the window and in any one partition (GX's ``mostly`` is ``1 - window``).
    """

    expectation: str
    column: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    severity: Severity = "block"
    window: float = 0.0
    partition: float = 0.0
    fix: str = ""  # where the limit it breaks is set, for the failure message

    @property
    def key(self) -> tuple[str, str | None]:
        return self.expectation, self.column

    def build(self) -> Any:
        """The GX expectation object."""
        cls = expectation_class(self.expectation)
        kwargs = {**self.kwargs, **({"column": self.column} if self.column else {})}
        if "mostly" in cls.__fields__:
            kwargs["mostly"] = 1.0 - self.window
        return cls(**kwargs)


def expectation_class(name: str) -> Any:
    """The GX expectation class for a snake_case name such as ``expect_column_values_to_be_in_set``."""
    import great_expectations as gx

    cls = getattr(gx.expectations, "".join(part.title() for part in name.split("_")), None)
    if cls is None or not name.startswith("expect_"):
        raise ExpectationsFileError(f"unknown Great Expectations expectation {name!r}")
    return cls


def schema_rules(config: Config) -> list[Rule]:
    """The rules implied by the config's schema and validation thresholds."""
    schema, values = config.data_schema, config.thresholds.validation.values
    least = {"min_value": config.thresholds.validation.min_rows}
    rules = [Rule("expect_table_row_count_to_be_between", kwargs=least, fix="thresholds.validation.min_rows sets it")]
    share = "or thresholds.validation.values for the share tolerated"
    for f in schema.features:
        types = NUMERIC_TYPES if f.kind == "numeric" else STRING_TYPES
        rules.append(Rule("expect_column_values_to_be_in_type_list", f.name, {"type_list": types}))
        if f.max_missing < 1.0:
            fix = f"to accept empty cells, raise max_missing of {f.name} in the schema"
            rules.append(
                Rule(
                    "expect_column_values_to_not_be_null",
                    f.name,
                    {},
                    "block",
                    f.max_missing,
                    f.partition_missing,
                    fix=fix,
                )
            )
        if f.kind == "numeric" and (f.min is not None or f.max is not None):
            bounds = {"min_value": f.min, "max_value": f.max}
            fix = f"the range is min/max of {f.name} in the schema, {share}"
            rules.append(
                Rule(
                    "expect_column_values_to_be_between",
                    f.name,
                    bounds,
                    "block",
                    values.window,
                    values.partition,
                    fix=fix,
                )
            )
        if f.kind == "categorical" and f.values:
            fix = f"the value set is values of {f.name} in the schema, {share}"
            rules.append(
                Rule(
                    "expect_column_values_to_be_in_set",
                    f.name,
                    {"value_set": f.values},
                    "block",
                    values.window,
                    values.partition,
                    fix=fix,
                )
            )
    label = schema.label
    rules.append(Rule("expect_column_values_to_not_be_null", label.name))
    if label.values:
        fix = "the label's value set is schema.label.values (a new class needs a model that knows it)"
        rules.append(Rule("expect_column_values_to_be_in_set", label.name, {"value_set": label.values}, fix=fix))
        for name in label.annotators:
            rules.append(Rule("expect_column_values_to_be_in_set", name, {"value_set": label.values}, "warn"))
    return rules


def load_rules(config: Config) -> list[Rule]:
    """The schema's rules refined by the config's expectations file (see ``configs/adult.expectations.yaml``).

    Raises:
        ExpectationsFileError: naming the file, the entry and what is wrong with it.
    """
    rules = {r.key: r for r in schema_rules(config)}
    path = config.expectations
    if path is None:
        return list(rules.values())
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise ExpectationsFileError(f"expectations file {path}: cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ExpectationsFileError(f"expectations file {path}: not valid YAML: {exc}") from None
    known_columns = {*config.data_schema.columns, *config.data_schema.label.annotators}
    for number, entry in enumerate(raw.get("expectations") or [], start=1):
        where = f"expectations file {path}, entry {number}"
        if not isinstance(entry, dict) or "expectation" not in entry:
            raise ExpectationsFileError(f"{where}: expected a mapping with an 'expectation' key, got {entry!r}")
        unknown = set(entry) - {"expectation", "column", "kwargs", "severity", "mostly", "partition_mostly", "enabled"}
        if unknown:
            raise ExpectationsFileError(f"{where}: unknown key(s) {sorted(unknown)}")
        column = entry.get("column")
        if column is not None and column not in known_columns:
            raise ExpectationsFileError(f"{where}: column {column!r} is not in the config's schema")
        if entry.get("severity", "block") not in ("block", "warn"):
            raise ExpectationsFileError(f"{where}: severity must be 'block' or 'warn', got {entry['severity']!r}")
        try:
            expectation_class(entry["expectation"])
        except ExpectationsFileError as exc:
            raise ExpectationsFileError(f"{where}: {exc}") from None
        key = (entry["expectation"], column)
        if entry.get("enabled", True) is False:
            rules.pop(key, None)
            continue
        base = rules.get(key, Rule(entry["expectation"], column))
        window = 1.0 - entry["mostly"] if "mostly" in entry else base.window
        partition = (
            1.0 - entry["partition_mostly"]
            if "partition_mostly" in entry
            else (window if "mostly" in entry else base.partition)
        )
        rules[key] = replace(
            base,
            kwargs={**base.kwargs, **(entry.get("kwargs") or {})},
            severity=entry.get("severity", base.severity),
            window=round(window, 12),
            partition=round(partition, 12),
            fix=f"entry {number} of the expectations file {path.name} sets this check",
        )
    return list(rules.values())


@dataclass(frozen=True)
class Batches:
    """The window as batches of whole partitions, read afresh on each pass so one batch is in memory at a time.

    ``groups`` lists each batch's units (partitions, or the snapshot's row groups) and ``load`` reads them.
    """

    groups: list[list[int]]
    load: Callable[[list[int]], pd.DataFrame]

    def __len__(self) -> int:
        return len(self.groups)

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for group in self.groups:
            yield self.load(group)

    @classmethod
    def of_snapshot(cls, snapshot: IngestOutput, max_rows: int) -> Batches:
        """The snapshot's row groups (ingest writes one per partition) in batches of at most ``max_rows`` rows."""
        return cls(group_units(snapshot.row_group_rows(), max_rows), snapshot.read_row_groups)

    @classmethod
    def of_frame(cls, frame: pd.DataFrame, max_rows: int) -> Batches:
        """An in-memory window's runs of one ``SOURCE_DS`` in batches of at most ``max_rows`` rows."""
        frame = frame.reset_index(drop=True)
        days = frame[SOURCE_DS].to_numpy()
        starts = [0, *(np.flatnonzero(days[1:] != days[:-1]) + 1).tolist()] if len(frame) else []
        bounds = list(zip(starts, [*starts[1:], len(frame)], strict=True))

        def load(units: list[int]) -> pd.DataFrame:
            if not units:
                return frame
            return frame.iloc[bounds[units[0]][0] : bounds[units[-1]][1]].reset_index(drop=True)

        return cls(group_units([stop - start for start, stop in bounds], max_rows), load)


def group_units(rows: list[int], max_rows: int) -> list[list[int]]:
    """Consecutive units (with ``rows`` rows each) grouped into batches of at most ``max_rows`` rows; a unit
    bigger than that is a batch of its own. No units give one empty batch, so an empty window is judged too."""
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for unit, n in enumerate(rows):
        if current and total + n > max_rows:
            groups.append(current)
            current, total = [], 0
        current.append(unit)
        total += n
    return [*groups, current]


class Suites:
    """One ephemeral GX context writing Data Docs into ``docs_dir``; each named suite is run on frame after frame."""

    def __init__(self, config: Config, docs_dir: Path) -> None:
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._config = config
        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        # The ephemeral context already owns a site called "local_site"; ours lives in the run's artifacts.
        self._context.add_data_docs_site(
            site_name="run_artifacts",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        asset = self._context.data_sources.add_pandas("snapshot").add_dataframe_asset(config.name)
        self._definition = asset.add_batch_definition_whole_dataframe("window")
        self._checkpoints: dict[str, tuple[Any, list[Any]]] = {}

    def run(
        self, rules: list[Rule], df: pd.DataFrame, suite: str = "schema", run_name: str | None = None
    ) -> list[dict[str, Any]]:
        """Run ``rules`` (the same for every call with this ``suite``) on ``df`` with result format COMPLETE.

        Returns each expectation's result dict (with ``unexpected_index_list`` for row-level ones, positions
        in ``df``), in the order of ``rules``.
        """
        if suite not in self._checkpoints:
            self._checkpoints[suite] = self._checkpoint(rules, suite)
        checkpoint, built = self._checkpoints[suite]
        from great_expectations.core.run_identifier import RunIdentifier

        # GX 1.24 does not recognise pandas 3's default string dtype; object columns of str it does.
        strings = {c: object for c in df.columns if isinstance(df[c].dtype, pd.StringDtype)}
        result = checkpoint.run(
            batch_parameters={"dataframe": df.astype(strings).reset_index(drop=True)},
            run_id=RunIdentifier(run_name=run_name) if run_name else None,
        )
        by_id = {r.expectation_config.id: r for run in result.run_results.values() for r in run.results}
        return [_result(by_id[e.id]) for e in built]

    def _checkpoint(self, rules: list[Rule], suite: str) -> tuple[Any, list[Any]]:
        import great_expectations as gx

        name = self._config.name
        own = "" if suite == "schema" else f"_{suite}"
        expectations = self._context.suites.add(gx.ExpectationSuite(name=f"{name}_{suite}"))
        built = [rule.build() for rule in rules]
        for expectation in built:
            expectations.add_expectation(expectation)
        validation = self._context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{name}_snapshot{own}", data=self._definition, suite=expectations)
        )
        checkpoint = self._context.checkpoints.add(
            gx.Checkpoint(
                name=f"{name}{own}_checkpoint",
                validation_definitions=[validation],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["run_artifacts"])],
                result_format={"result_format": "COMPLETE", "partial_unexpected_count": EXAMPLES},
            )
        )
        return checkpoint, built


def run_suite(df: pd.DataFrame, config: Config, rules: list[Rule], docs_dir: Path) -> list[dict[str, Any]]:
    """Run ``rules`` with GX on ``df`` (result format COMPLETE), build Data Docs into ``docs_dir``.

    Returns each expectation's result dict (with ``unexpected_index_list`` for row-level ones), in
    the order of ``rules``.
    """
    return Suites(config, docs_dir).run(rules, df)


def _result(r: Any) -> dict[str, Any]:
    res = dict(r.result or {})
    res["success"] = bool(r.success)
    if r.exception_info and r.exception_info.get("raised_exception"):
        res["error"] = r.exception_info.get("exception_message")
    return res


def how_judged(rule: Rule, config: Config, batches: int) -> Judged:
    """``batch`` (GX on each batch, counts added), ``exact`` (combined from each batch's statistics) or
    ``sample`` (GX on the window's sample). One batch: everything is ``batch``, a single GX run."""
    if batches <= 1:
        return "batch"
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )

    row_level = (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)
    if issubclass(expectation_class(rule.expectation), row_level) and rule.expectation not in CROSS_ROW:
        return "batch"
    if rule.expectation in EXACT_AGGREGATES and (rule.column is None or rule.column in config.data_schema.numeric):
        return "exact"
    return "sample"


def count_by_partition(result: dict[str, Any], frame: pd.DataFrame) -> dict[str, Any]:
    """A row-level result with its unexpected rows counted per partition (``unexpected_by_partition``)
    instead of listed; any other result unchanged."""
    if "unexpected_index_list" not in result:
        return result
    unexpected = frame[SOURCE_DS].iloc[result["unexpected_index_list"]].value_counts()
    return {
        "success": result["success"],
        "unexpected_count": int(result["unexpected_count"]),
        "partial_unexpected_list": list(result.get("partial_unexpected_list") or [])[:EXAMPLES],
        "unexpected_by_partition": Counter({str(ds): int(n) for ds, n in unexpected.items()}),
    }


def merge_counts(total: dict[str, Any] | None, part: dict[str, Any]) -> dict[str, Any]:
    """Two batches' row-level results as one (counts added, the first examples kept); an error wins."""
    if total is None:
        return part
    if "unexpected_by_partition" not in total:
        return total
    if "unexpected_by_partition" not in part:
        return part
    return {
        "success": total["success"] and part["success"],
        "unexpected_count": total["unexpected_count"] + part["unexpected_count"],
        "partial_unexpected_list": [*total["partial_unexpected_list"], *part["partial_unexpected_list"]][:EXAMPLES],
        "unexpected_by_partition": total["unexpected_by_partition"] + part["unexpected_by_partition"],
    }


@dataclass
class Moments:
    """A column's statistics over the batches seen so far (or only the row count, without a column)."""

    rows: int = 0
    count: int = 0
    total: float = 0.0
    low: Any = None
    high: Any = None

    def add(self, batch: pd.DataFrame, column: str | None) -> None:
        """Take in one batch."""
        self.rows += len(batch)
        if column is None:
            return
        values = batch[column].dropna()
        if not len(values):
            return
        low, high = _plain(values.min()), _plain(values.max())
        self.count += len(values)
        self.total += float(values.sum())
        self.low = low if self.low is None else min(self.low, low)
        self.high = high if self.high is None else max(self.high, high)

    def observed(self, statistic: str) -> Any:
        """The window's value of ``statistic`` (see ``EXACT_AGGREGATES``); None when it has no values."""
        if statistic == "rows":
            return self.rows
        if statistic == "non_null_share":
            return self.count / self.rows if self.rows else None
        if not self.count:
            return None
        return {"mean": self.total / self.count, "min": self.low, "max": self.high, "sum": self.total}[statistic]


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def within(observed: Any, kwargs: Mapping[str, Any]) -> bool:
    """Whether an aggregate's observed value meets GX's ``value`` or ``min_value``/``max_value`` (with
    ``strict_min``/``strict_max``) arguments; a missing bound is open, a missing value fails."""
    if observed is None:
        return False
    if "value" in kwargs:
        return bool(observed == kwargs["value"])
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    above = low is None or (observed > low if kwargs.get("strict_min") else observed >= low)
    below = high is None or (observed < high if kwargs.get("strict_max") else observed <= high)
    return bool(above and below)


class Sample:
    """At most ``size`` rows of the window, the same whatever the batches: those whose window position hashes
    lowest, kept in window order. Holds at most ``size`` rows plus one batch."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rows = 0
        self.frame: pd.DataFrame | None = None
        self._hashes = np.empty(0, dtype=np.uint64)

    def add(self, batch: pd.DataFrame) -> None:
        """Take in the window's next batch."""
        positions = np.arange(self.rows, self.rows + len(batch), dtype=np.uint64)
        self.rows += len(batch)
        frame = batch if self.frame is None else pd.concat([self.frame, batch], ignore_index=True)
        hashes = np.concatenate([self._hashes, pd.util.hash_array(positions)])
        keep = np.sort(np.argsort(hashes, kind="stable")[: self.size])  # positions rise with the concat order
        self.frame, self._hashes = frame.iloc[keep].reset_index(drop=True), hashes[keep]


def judge(rule: Rule, result: dict[str, Any], rows: Mapping[str, int]) -> dict[str, Any]:
    """One expectation's verdict over the window and per partition, with counts and shares.

    ``result`` is a GX result with row-level counts per partition (see ``count_by_partition``); ``rows``
    counts the rows of each partition. Shares are of all the rows of the window or partition (GX's own
    ``mostly`` counts only non-null rows for value checks; the null check is separate), so a message
    reads "10 of 800 rows".
    """
    entry: dict[str, Any] = {
        "expectation": rule.expectation,
        "column": rule.column,
        "severity": rule.severity,
        "kwargs": {k: v for k, v in rule.kwargs.items() if k != "value_set"},
        "fix": rule.fix,
    }
    if "unexpected_by_partition" not in result:  # an aggregate expectation: judged over the window only
        observed = result.get("observed_value")
        entry["window"] = {
            "success": result["success"],
            "observed": None
            if observed is None
            else (f"{observed:.4g}" if isinstance(observed, float) else str(observed)),
            **({"error": result["error"]} if "error" in result else {}),
        }
        entry["success"] = result["success"]
        return entry
    partitions = {}
    for ds, bad in sorted(result["unexpected_by_partition"].items()):
        if not bad:
            continue
        share = bad / rows[ds]
        partitions[ds] = {
            "unexpected": int(bad),
            "rows": int(rows[ds]),
            "share": round(share, 6),
            "success": bool(share <= rule.partition),
        }
    total = int(sum(rows.values()))
    share = result["unexpected_count"] / total if total else 0.0
    entry["tolerance"] = {"window": rule.window, "partition": rule.partition}
    entry["window"] = {
        "success": bool(share <= rule.window),
        "unexpected": int(result["unexpected_count"]),
        "rows": total,
        "share": round(share, 6),
        "examples": [str(v) for v in (result.get("partial_unexpected_list") or [])[:EXAMPLES]],
    }
    entry["partitions"] = partitions
    entry["success"] = entry["window"]["success"] and all(p["success"] for p in partitions.values())
    return entry


def _what(entry: dict[str, Any]) -> str:
    column, kwargs = entry["column"], entry["kwargs"]
    if entry["expectation"] == "expect_column_values_to_not_be_null":
        return f"have {column} empty"
    if entry["expectation"] == "expect_column_values_to_be_in_set":
        return f"have {column} outside the value set"
    if entry["expectation"] == "expect_column_values_to_be_between":
        return f"have {column} outside [{kwargs.get('min_value')}, {kwargs.get('max_value')}]"
    return f"break {entry['expectation']} on {column}"


def messages(entry: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(failures, notes) of one judged expectation, one line per window or partition that broke it.

    Failures are what the entry's severity applies to; notes are unexpected rows within tolerance. An
    entry judged on the window's sample says so on each line.
    """
    failures, notes = _messages(entry)
    sample = entry.get("sample")
    if sample:
        suffix = f" (judged on a sample of {sample['rows']:,} of {sample['of']:,} rows)"
        failures, notes = [f + suffix for f in failures], [n + suffix for n in notes]
    return failures, notes


def _messages(entry: dict[str, Any]) -> tuple[list[str], list[str]]:
    window = entry["window"]
    if "unexpected" not in window:
        seen = f"observed {window['observed']}" if window.get("observed") is not None else window.get("error", "")
        args = ", ".join(f"{k}={v}" for k, v in entry["kwargs"].items())
        line = f"{entry['column'] or 'table'}: {entry['expectation']} failed" + (f" ({args})" if args else "")
        line += (f": {seen}" if seen else "") + (f" -- {entry['fix']}" if entry.get("fix") else "")
        return ([line] if not window["success"] else []), []
    what, tol = _what(entry), entry["tolerance"]
    empty = entry["expectation"] == "expect_column_values_to_not_be_null"  # its examples are all empty
    examples = f", e.g. {window['examples']}" if window["examples"] and not empty else ""
    failures, notes = [], []
    for ds, p in entry["partitions"].items():
        if not p["success"]:
            failures.append(
                f"ds={ds}: {p['unexpected']:,} of {p['rows']:,} rows ({p['share']:.1%}) {what} "
                f"(tolerance {tol['partition']:.1%} per partition){examples}"
            )
    line = f"window: {window['unexpected']:,} of {window['rows']:,} rows ({window['share']:.2%}) {what}"
    if not window["success"]:
        failures.insert(0, f"{line} (tolerance {tol['window']:.1%}){examples}")
    elif window["unexpected"] and not failures and not empty:
        days = ", ".join(f"ds={ds}: {p['unexpected']}" for ds, p in entry["partitions"].items())
        notes.append(f"{line}, within tolerance {tol['window']:.1%} ({days}){examples}")
    if failures and entry.get("fix"):
        failures[0] += f" -- {entry['fix']}"
    return failures, notes


def summarise(judged: list[dict[str, Any]], rows: Mapping[str, int]) -> dict[str, Any]:
    """The compact validation summary: blocking failures, warnings, and per-partition counts (``rows`` per day)."""
    blocked, warnings = [], []
    per_day: dict[str, dict[str, int]] = {
        ds: {"rows": int(n), "failed": 0, "warnings": 0} for ds, n in sorted(rows.items())
    }
    for entry in judged:
        failures, notes = messages(entry)
        (blocked if entry["severity"] == "block" else warnings).extend(failures)
        warnings.extend(notes)
        for ds, p in entry.get("partitions", {}).items():
            if not p["success"]:
                per_day[ds]["failed" if entry["severity"] == "block" else "warnings"] += 1
    return {
        "success": not blocked,
        "evaluated": len(judged),
        "blocked": blocked,
        "warnings": warnings,
        "partitions": per_day,
        "expectations": judged,
    }


def validate_frame(frame: pd.DataFrame, config: Config, docs_dir: Path) -> dict[str, Any]:
    """Validate an in-memory snapshot frame (see ``validate_batches``), in batches of ``BATCH_ROWS`` rows."""
    return validate_batches(Batches.of_frame(frame, BATCH_ROWS), config, docs_dir)


def validate_batches(batches: Batches, config: Config, docs_dir: Path) -> dict[str, Any]:
    """Validate a window batch by batch: GX expectations per window and partition, then label consistency.

    One pass runs GX on each batch (every rule when there is one batch, else the row-level ones), adds up
    the exact aggregates' statistics, draws the sample and counts the labels; GX then runs the sampled
    rules on the sample. Label conflicts with examples to list read the batches once more.
    """
    rules = load_rules(config)
    judged_by = [how_judged(rule, config, len(batches)) for rule in rules]
    on_batches = [r for r, how in zip(rules, judged_by, strict=True) if how == "batch"]
    sampled = [r for r, how in zip(rules, judged_by, strict=True) if how == "sample"]
    exact = {r.key: Moments() for r, how in zip(rules, judged_by, strict=True) if how == "exact"}
    suites = Suites(config, docs_dir)
    sample = Sample(BATCH_ROWS) if sampled else None
    labels = LabelTally(config.data_schema)
    rows: Counter[str] = Counter()
    results: dict[tuple[str, str | None], dict[str, Any]] = {}
    only: list[pd.DataFrame] = []  # a window of one batch is kept for the labels' second pass, not read again
    for batch in batches:
        if len(batches) == 1:
            only.append(batch)
        days = batch[SOURCE_DS].value_counts()
        rows.update({str(ds): int(n) for ds, n in days.items()})
        run_name = f"ds={min(days.index)}..{max(days.index)}" if len(batches) > 1 and len(days) else None
        for rule, result in zip(on_batches, suites.run(on_batches, batch, run_name=run_name), strict=True):
            results[rule.key] = merge_counts(results.get(rule.key), count_by_partition(result, batch))
        for rule in rules:
            if rule.key in exact:
                exact[rule.key].add(batch, rule.column)
        if sample is not None:
            sample.add(batch)
        labels.add(batch)
        del batch
    for key, moments in exact.items():
        observed = moments.observed(EXACT_AGGREGATES[key[0]])
        kwargs = next(r.kwargs for r in rules if r.key == key)
        results[key] = {"success": within(observed, kwargs), "observed_value": observed}
    sample_frame = sample.frame if sample is not None and sample.frame is not None else pd.DataFrame()
    sample_rows: Counter[str] = Counter()
    if sampled:
        sample_rows.update({str(ds): int(n) for ds, n in sample_frame[SOURCE_DS].value_counts().items()})
        for rule, result in zip(sampled, suites.run(sampled, sample_frame, "sample", "sample"), strict=True):
            results[rule.key] = count_by_partition(result, sample_frame)
    judged = []
    for rule, how in zip(rules, judged_by, strict=True):
        entry = judge(rule, results[rule.key], sample_rows if how == "sample" else rows)
        if how == "sample":
            entry["sample"] = {"rows": len(sample_frame), "of": sum(rows.values())}
        judged.append(entry)
    summary = summarise(judged, rows)
    report = labels.report(lambda: only or iter(batches), config.thresholds.validation)
    report["checks"] = [labels.classes_check(), *report["checks"]]
    summary["labels"] = report
    for check in report["checks"]:
        if not check["success"]:
            (summary["blocked"] if check["severity"] == "block" else summary["warnings"]).append(check["message"])
    summary["success"] = not summary["blocked"]
    return summary


def validate_snapshot(ctx: RunContext, snapshot_uri: str) -> str:
    """Validate the snapshot; write the summary and Data Docs; block on a failed ``block`` expectation.

    Raises:
        ValidationFailed: after writing the artifacts (marked failed), naming each failure.
    """
    snapshot = require(IngestOutput(snapshot_uri))
    final = ValidationOutput(ctx.stage_dir(StageName.VALIDATE))
    with ctx.open_stage(StageName.VALIDATE) as out:
        written = ValidationOutput(out.path)
        summary = validate_batches(Batches.of_snapshot(snapshot, BATCH_ROWS), ctx.config, written.data_docs)
        summary["data_docs"] = str(final.data_docs / "index.html")
        write_json_atomic(written.result_path, summary)
        out.finish(
            fingerprint_json(summary),
            inputs={"snapshot": snapshot},
            status=Status.SUCCEEDED if summary["success"] else Status.FAILED,
            success=summary["success"],
            blocked=len(summary["blocked"]),
            warnings=summary["warnings"],
        )
    log.info("validation: %d expectations, %d blocking failures", summary["evaluated"], len(summary["blocked"]))
    for message in summary["warnings"]:
        log.warning("validation: %s", message)
    if not summary["success"]:
        raise ValidationFailed(
            f"validation of {snapshot_uri} blocked the run ({len(summary['blocked'])} failure(s)):\n  "
            + "\n  ".join(summary["blocked"])
            + f"\nsummary: {final.result_path}\nData Docs: {summary['data_docs']}"
        )
    return out.uri
