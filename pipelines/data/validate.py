"""Validation: Great Expectations 1.x run on the snapshot, judged per partition and over the window.

The suite is generated from the config's schema (each column's type, nulls against its
``max_missing``, value set or range with the ``thresholds.validation.values`` tolerance, the label's
values, the window's row count) and then refined by the use case's expectations file (the config's
``expectations`` key), which can add any GX expectation, change one's arguments, tolerance or
severity, or turn one off. GX runs once on the window; each row-level expectation's unexpected rows
(GX's ``unexpected_index_list``) are then counted per partition, so one bad day is judged against
its own rows instead of being diluted by the window. A ``block`` expectation that fails anywhere
blocks the run; a ``warn`` one is recorded as a warning. ``validation.json`` is the compact summary
(per expectation and per partition) the run card shows; Data Docs are written beside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

from pipelines.core.artifacts import fingerprint_json, write_json_atomic
from pipelines.core.config import Config
from pipelines.core.context import RunContext
from pipelines.core.contracts import PipelineError, StageName, Status
from pipelines.core.outputs import SOURCE_DS, IngestOutput, ValidationOutput, require
from pipelines.data.labels import label_consistency

log = logging.getLogger(__name__)

NUMERIC_TYPES = ["float64", "Float64", "float32", "int64", "Int64"]
STRING_TYPES = ["str"]
EXAMPLES = 5
Severity = Literal["block", "warn"]


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
    rules = [Rule("expect_table_row_count_to_be_between", kwargs={"min_value": config.thresholds.validation.min_rows})]
    for f in schema.features:
        types = NUMERIC_TYPES if f.kind == "numeric" else STRING_TYPES
        rules.append(Rule("expect_column_values_to_be_in_type_list", f.name, {"type_list": types}))
        if f.max_missing < 1.0:
            rules.append(
                Rule("expect_column_values_to_not_be_null", f.name, {}, "block", f.max_missing, f.partition_missing)
            )
        if f.kind == "numeric" and (f.min is not None or f.max is not None):
            bounds = {"min_value": f.min, "max_value": f.max}
            rules.append(
                Rule("expect_column_values_to_be_between", f.name, bounds, "block", values.window, values.partition)
            )
        if f.kind == "categorical" and f.values:
            rules.append(
                Rule(
                    "expect_column_values_to_be_in_set",
                    f.name,
                    {"value_set": f.values},
                    "block",
                    values.window,
                    values.partition,
                )
            )
    label = schema.label
    rules.append(Rule("expect_column_values_to_not_be_null", label.name))
    if label.values:
        rules.append(Rule("expect_column_values_to_be_in_set", label.name, {"value_set": label.values}))
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
        )
    return list(rules.values())


def run_suite(df: pd.DataFrame, config: Config, rules: list[Rule], docs_dir: Path) -> list[dict[str, Any]]:
    """Run ``rules`` with GX on ``df`` (result format COMPLETE), build Data Docs into ``docs_dir``.

    Returns each expectation's result dict (with ``unexpected_index_list`` for row-level ones), in
    the order of ``rules``.
    """
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    # The ephemeral context already owns a site called "local_site"; ours lives in the run's artifacts.
    context.add_data_docs_site(
        site_name="run_artifacts",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    batch = context.data_sources.add_pandas("snapshot").add_dataframe_asset(config.name)
    definition = batch.add_batch_definition_whole_dataframe("window")
    suite = context.suites.add(gx.ExpectationSuite(name=f"{config.name}_schema"))
    built = [rule.build() for rule in rules]
    for expectation in built:
        suite.add_expectation(expectation)
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{config.name}_snapshot", data=definition, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{config.name}_checkpoint",
            validation_definitions=[validation],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["run_artifacts"])],
            result_format={"result_format": "COMPLETE", "partial_unexpected_count": EXAMPLES},
        )
    )
    # GX 1.24 does not recognise pandas 3's default string dtype; object columns of str it does.
    strings = {c: object for c in df.columns if isinstance(df[c].dtype, pd.StringDtype)}
    result = checkpoint.run(batch_parameters={"dataframe": df.astype(strings).reset_index(drop=True)})
    by_id = {r.expectation_config.id: r for run in result.run_results.values() for r in run.results}
    return [_result(by_id[e.id]) for e in built]


def _result(r: Any) -> dict[str, Any]:
    res = dict(r.result or {})
    res["success"] = bool(r.success)
    if r.exception_info and r.exception_info.get("raised_exception"):
        res["error"] = r.exception_info.get("exception_message")
    return res


def judge(rule: Rule, result: dict[str, Any], frame: pd.DataFrame) -> dict[str, Any]:
    """One expectation's verdict over the window and per partition, with counts and shares.

    Shares are of all the rows of the window or partition (GX's own ``mostly`` counts only non-null
    rows for value checks; the null check is separate), so a message reads "10 of 800 rows".
    """
    entry: dict[str, Any] = {
        "expectation": rule.expectation,
        "column": rule.column,
        "severity": rule.severity,
        "kwargs": {k: v for k, v in rule.kwargs.items() if k != "value_set"},
    }
    if "unexpected_index_list" not in result:  # an aggregate expectation: judged over the window only
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
    rows = frame[SOURCE_DS].value_counts()
    unexpected = frame.loc[result["unexpected_index_list"], SOURCE_DS].value_counts()
    partitions = {}
    for ds, bad in sorted(unexpected.items()):
        share = bad / rows[ds]
        partitions[ds] = {
            "unexpected": int(bad),
            "rows": int(rows[ds]),
            "share": round(share, 6),
            "success": bool(share <= rule.partition),
        }
    total = int(rows.sum())
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

    Failures are what the entry's severity applies to; notes are unexpected rows within tolerance.
    """
    window = entry["window"]
    if "unexpected" not in window:
        seen = f"observed {window['observed']}" if window.get("observed") is not None else window.get("error", "")
        args = ", ".join(f"{k}={v}" for k, v in entry["kwargs"].items())
        line = f"{entry['column'] or 'table'}: {entry['expectation']} failed" + (f" ({args})" if args else "")
        return ([line + (f": {seen}" if seen else "")] if not window["success"] else []), []
    what, tol = _what(entry), entry["tolerance"]
    examples = f", e.g. {window['examples']}" if window["examples"] else ""
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
    elif window["unexpected"] and not failures and entry["expectation"] != "expect_column_values_to_not_be_null":
        days = ", ".join(f"ds={ds}: {p['unexpected']}" for ds, p in entry["partitions"].items())
        notes.append(f"{line}, within tolerance {tol['window']:.1%} ({days}){examples}")
    return failures, notes


def summarise(judged: list[dict[str, Any]], frame: pd.DataFrame) -> dict[str, Any]:
    """The compact validation summary: blocking failures, warnings, and per-partition counts."""
    blocked, warnings = [], []
    per_day: dict[str, dict[str, int]] = {
        ds: {"rows": int(n), "failed": 0, "warnings": 0}
        for ds, n in frame[SOURCE_DS].value_counts().sort_index().items()
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
    """Validate a snapshot frame: GX expectations per window and partition, then label consistency."""
    frame = frame.reset_index(drop=True)
    rules = load_rules(config)
    judged = [
        judge(rule, result, frame)
        for rule, result in zip(rules, run_suite(frame, config, rules, docs_dir), strict=True)
    ]
    summary = summarise(judged, frame)
    labels = label_consistency(frame, config.data_schema, config.thresholds.validation)
    summary["labels"] = labels
    for check in labels["checks"]:
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
        summary = validate_frame(snapshot.read_snapshot(), ctx.config, written.data_docs)
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
