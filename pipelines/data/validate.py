"""Validation: a Great Expectations 1.x suite generated from the config's schema, run on the snapshot.

The suite checks each column's type, nulls (against the feature's ``max_missing``), value set
(categorical) or range (numeric), the label's values, and the row count. A failure blocks the run:
``ValidationFailed`` carries a summary that names each failing column and expectation. The result
JSON and a Data Docs site are written into the run's artifacts either way.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from pipelines.core.artifacts import fingerprint_json, write_json_atomic
from pipelines.core.config import Config
from pipelines.core.context import RunContext
from pipelines.core.contracts import PipelineError, StageName, Status
from pipelines.core.outputs import IngestOutput, ValidationOutput, require

log = logging.getLogger(__name__)

NUMERIC_TYPES = ["float64", "Float64", "float32", "int64", "Int64"]
STRING_TYPES = ["str"]


class ValidationFailed(PipelineError):
    """The snapshot broke expectations; the message lists each failing column and expectation."""


def build_expectations(config: Config) -> list[Any]:
    """The GX expectations implied by the config's schema and validation thresholds."""
    import great_expectations as gx

    schema = config.data_schema
    exp = gx.expectations
    suite: list[Any] = [exp.ExpectTableRowCountToBeBetween(min_value=config.thresholds.validation.min_rows)]
    for f in schema.features:
        types = NUMERIC_TYPES if f.kind == "numeric" else STRING_TYPES
        suite.append(exp.ExpectColumnValuesToBeInTypeList(column=f.name, type_list=types))
        if f.max_missing < 1.0:
            suite.append(exp.ExpectColumnValuesToNotBeNull(column=f.name, mostly=1.0 - f.max_missing))
        if f.kind == "numeric" and (f.min is not None or f.max is not None):
            suite.append(exp.ExpectColumnValuesToBeBetween(column=f.name, min_value=f.min, max_value=f.max))
        if f.kind == "categorical" and f.values:
            suite.append(exp.ExpectColumnValuesToBeInSet(column=f.name, value_set=f.values))
    label = schema.label
    suite.append(exp.ExpectColumnValuesToNotBeNull(column=label.name))
    if label.values:
        suite.append(exp.ExpectColumnValuesToBeInSet(column=label.name, value_set=label.values))
    return suite


def run_suite(df: pd.DataFrame, config: Config, docs_dir: Path) -> dict[str, Any]:
    """Run the generated suite on ``df``, build Data Docs into ``docs_dir``; return a summary."""
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
    for expectation in build_expectations(config):
        suite.add_expectation(expectation)
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{config.name}_snapshot", data=definition, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{config.name}_checkpoint",
            validation_definitions=[validation],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["run_artifacts"])],
            result_format="SUMMARY",
        )
    )
    # GX 1.24 does not recognise pandas 3's default string dtype; object columns of str it does.
    strings = {c: object for c in df.columns if isinstance(df[c].dtype, pd.StringDtype)}
    result = checkpoint.run(batch_parameters={"dataframe": df.astype(strings)})
    checks = [_check(r) for run in result.run_results.values() for r in run.results]
    return {
        "success": bool(result.success),
        "evaluated": len(checks),
        "failed": [c for c in checks if not c["success"]],
        "checks": checks,
    }


def _check(r: Any) -> dict[str, Any]:
    cfg, res = r.expectation_config, r.result or {}
    return {
        "expectation": cfg.type,
        "column": cfg.kwargs.get("column"),
        "success": bool(r.success),
        "unexpected_percent": res.get("unexpected_percent"),
        "examples": [str(v) for v in (res.get("partial_unexpected_list") or [])[:5]],
        "observed": None if res.get("observed_value") is None else str(res.get("observed_value")),
        "kwargs": {k: v for k, v in cfg.kwargs.items() if k not in ("column", "batch_id")},
    }


def describe_failures(summary: dict[str, Any]) -> str:
    """One line per failed expectation: column, expectation, what was seen."""
    lines = []
    for c in summary["failed"]:
        seen = []
        if c["unexpected_percent"] is not None:
            seen.append(f"{c['unexpected_percent']:.1f}% unexpected")
        if c["examples"]:
            seen.append(f"e.g. {c['examples']}")
        if c["observed"] is not None:
            seen.append(f"observed {c['observed']}")
        expected = ", ".join(f"{k}={v}" for k, v in c["kwargs"].items() if k != "value_set")
        lines.append(
            f"{c['column'] or '(table)'}: {c['expectation']} failed"
            + (f" ({expected})" if expected else "")
            + (f": {'; '.join(seen)}" if seen else "")
        )
    return "\n".join(lines)


def validate_snapshot(ctx: RunContext, snapshot_uri: str) -> str:
    """Validate the snapshot; write the result and Data Docs; block on failure.

    Raises:
        ValidationFailed: after writing the artifacts (marked failed), if any expectation failed.
    """
    snapshot = require(IngestOutput(snapshot_uri))
    final = ValidationOutput(ctx.stage_dir(StageName.VALIDATE))
    with ctx.open_stage(StageName.VALIDATE) as out:
        written = ValidationOutput(out.path)
        summary = run_suite(snapshot.read_snapshot(), ctx.config, written.data_docs)
        summary["data_docs"] = str(final.data_docs / "index.html")
        write_json_atomic(written.result_path, summary)
        out.finish(
            fingerprint_json(summary),
            inputs={"snapshot": snapshot},
            status=Status.SUCCEEDED if summary["success"] else Status.FAILED,
            success=summary["success"],
        )
    log.info("validation: %d expectations, %d failed", summary["evaluated"], len(summary["failed"]))
    if not summary["success"]:
        raise ValidationFailed(
            f"{len(summary['failed'])} of {summary['evaluated']} expectations failed on {snapshot_uri}:\n"
            f"{describe_failures(summary)}\nData Docs: {summary['data_docs']}"
        )
    return out.uri
