"""The run context: run options checked by name, and the one stage write sequence."""

from __future__ import annotations

import pytest

from pipelines.core.context import RunContext, check_run_conf
from pipelines.core.contracts import PipelineError, StageName, Status
from pipelines.core.outputs import DriftOutput, IngestOutput, StaleInput, TrainOutput, inconsistency, require

DECLARED = ["config", "date", "window_days", "force", "attempt"]


def test_declared_run_options_pass():
    check_run_conf({"config": "c.yaml", "window_days": 7}, DECLARED)
    check_run_conf({}, DECLARED)


def test_an_undeclared_run_option_is_refused_naming_it_and_the_known_ones():
    with pytest.raises(PipelineError, match=r"unknown run option\(s\) \['windw_days'\]: the options are \['attempt'"):
        check_run_conf({"windw_days": 7, "force": True}, DECLARED)


def test_open_stage_writes_metadata_last_and_returns_the_final_uri(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03")

    with ctx.open_stage(StageName.DRIFT) as out:
        DriftOutput(out.path).report_path.write_text("{}")
        assert not ctx.stage_dir(StageName.DRIFT).exists()
        out.finish("f" * 64, verdict="stable")

    meta = require(DriftOutput(out.uri)).metadata()
    assert out.uri == str(ctx.stage_dir(StageName.DRIFT))
    assert (meta["stage"], meta["status"], meta["fingerprint"], meta["verdict"]) == (
        "drift",
        "succeeded",
        "f" * 64,
        "stable",
    )


def test_a_stage_that_forgets_its_metadata_publishes_nothing(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03")

    with pytest.raises(RuntimeError, match="wrote no metadata"), ctx.open_stage(StageName.DRIFT) as out:
        DriftOutput(out.path).report_path.write_text("{}")

    assert not ctx.stage_dir(StageName.DRIFT).exists()


def test_require_follows_the_chain_of_recorded_inputs(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03")
    stages = (StageName.INGEST, StageName.TRANSFORM, StageName.TRAIN)
    for upstream, stage in zip((None, *stages), stages, strict=False):
        with ctx.open_stage(stage) as out:
            inputs = {"upstream": ctx.stage_dir(upstream)} if upstream else {}
            out.finish(f"{stage}-1", inputs=inputs)
    assert inconsistency(ctx.stage_dir(StageName.TRAIN)) is None

    with ctx.open_stage(StageName.INGEST) as out:  # a re-run replaced the start of the chain
        out.finish("ingest-2")

    assert "that has since been replaced" in inconsistency(ctx.stage_dir(StageName.TRANSFORM))
    assert "itself out of date" in inconsistency(ctx.stage_dir(StageName.TRAIN))
    with pytest.raises(StaleInput, match="re-run from `train`"):
        require(TrainOutput(ctx.stage_dir(StageName.TRAIN)))

    with ctx.open_stage(StageName.INGEST) as out:
        out.finish("ingest-3", status=Status.FAILED)
    with pytest.raises(StaleInput, match="marked failed"):
        require(IngestOutput(ctx.stage_dir(StageName.INGEST)))
