"""Blue-green promotion, rollback through the history, garbage collection, idempotence and refusals."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import candidate

from pipelines.core.context import RunContext
from pipelines.core.contracts import Action, StageName
from pipelines.core.deployment_state import DeployError, DeploymentState, Slot, live_version, read_state, state_path
from pipelines.core.outputs import GateOutput, TrainOutput, TransformOutput
from pipelines.deployment.models import models_dir
from pipelines.deployment.promote import promote_blue_green
from pipelines.deployment.registry import registered_model
from pipelines.deployment.rollback import rollback


def promote(ctx: RunContext, *uris: str) -> str:
    return promote_blue_green(ctx, *uris)


@pytest.fixture
def ctx(small_adult):
    return RunContext.create(small_adult, "2026-01-03")


def ctx_for(ctx: RunContext, day: int) -> RunContext:
    return RunContext.create(ctx.config, f"2026-01-{day:02d}")


@pytest.fixture
def ctx2(ctx):
    return ctx_for(ctx, 4)


def live_alias(ctx: RunContext) -> tuple[str, str]:
    """The MLflow registry's ``live`` alias: the run it points to and its deployment version tag."""
    import mlflow

    version = mlflow.MlflowClient().get_model_version_by_alias(registered_model(ctx.config), "live")
    return version.run_id, version.tags["deployment_version"]


def expected_version(ctx: RunContext, train_uri: str) -> str:
    return f"{ctx.ds.isoformat()}-{TrainOutput(train_uri).metadata()['fingerprint'][:12]}"


def test_no_state_before_the_first_promotion(ctx):
    assert live_version(ctx.config) is None
    assert read_state(ctx.config) == DeploymentState()
    with pytest.raises(DeployError, match="nothing is live"):
        rollback(ctx.config)


def test_first_promotion_goes_to_blue(ctx):
    train, transform, gate = candidate(ctx, "a")

    uri = promote(ctx, train, transform, gate)

    assert uri == str(state_path(ctx.config))
    state = read_state(ctx.config)
    assert state.live is Slot.BLUE
    assert state.slots[Slot.GREEN] is None
    blue = state.slots[Slot.BLUE]
    assert blue.version == expected_version(ctx, train)
    assert (blue.ds, blue.run_id) == ("2026-01-03", ctx.run_id)
    assert live_alias(ctx) == (blue.mlflow_run_id, blue.version)
    assert blue.decision["action"] == "PROMOTE"
    assert Path(blue.model_uri, "saved_model.pb").read_bytes() == b"model a"
    assert Path(blue.model_uri, "variables", "variables.index").read_bytes() == b"\x00\x01a"
    [event] = state.history
    assert (event.action, event.source, event.target, event.version, event.ds) == (
        "promote",
        None,
        Slot.BLUE,
        blue.version,
        "2026-01-03",
    )


def test_live_version_is_the_live_slot_and_its_reference_is_the_training_data(ctx):
    train, transform, gate = candidate(ctx, "a")
    promote(ctx, train, transform, gate)

    live = live_version(ctx.config)

    assert live == read_state(ctx.config).slots[Slot.BLUE]
    assert Path(live.reference_uri).is_file()
    pd.testing.assert_frame_equal(
        pd.read_parquet(live.reference_uri), pd.read_parquet(TransformOutput(transform).train_raw)
    )
    # The version folder is a copy: the run's inputs may be cleaned up later.
    assert not Path(live.model_uri).is_relative_to(Path(train))


def test_second_promotion_goes_to_green_and_keeps_blue(ctx, ctx2):
    promote(ctx, *candidate(ctx, "a"))
    blue_before = read_state(ctx.config).slots[Slot.BLUE]
    train, transform, gate = candidate(ctx2, "b")

    promote(ctx2, train, transform, gate)

    state = read_state(ctx.config)
    assert state.live is Slot.GREEN
    assert state.slots[Slot.BLUE] == blue_before
    assert state.slots[Slot.GREEN].version == expected_version(ctx2, train) != blue_before.version
    assert Path(state.slots[Slot.GREEN].model_uri, "saved_model.pb").read_bytes() == b"model b"
    assert Path(blue_before.model_uri, "saved_model.pb").read_bytes() == b"model a"
    assert [(e.action, e.source, e.target) for e in state.history] == [
        ("promote", None, Slot.BLUE),
        ("promote", Slot.BLUE, Slot.GREEN),
    ]
    assert live_version(ctx.config).version == state.slots[Slot.GREEN].version


def test_rollback_goes_back_to_the_previous_live_version_and_says_so(ctx, ctx2):
    promote(ctx, *candidate(ctx, "a"))
    promote(ctx2, *candidate(ctx2, "b"))
    before = read_state(ctx.config)

    new, line = rollback(ctx.config, run_id="operator")

    blue = before.slots[Slot.BLUE]
    assert new == read_state(ctx.config)
    assert new.live is Slot.BLUE and new.slots == before.slots
    assert new.history[:2] == before.history
    last = new.history[-1]
    assert (last.action, last.source, last.target, last.run_id, last.version) == (
        "rollback",
        Slot.GREEN,
        Slot.BLUE,
        "operator",
        blue.version,
    )
    assert line == f"rolled back: live is now blue = {blue.version} (was green = {before.slots[Slot.GREEN].version})"
    assert live_version(ctx.config) == blue
    assert live_alias(ctx) == (blue.mlflow_run_id, blue.version), "the registry follows the rollback"


def test_two_rollbacks_go_two_versions_back_not_back_and_forth(ctx):
    versions = []
    for day, tag in ((3, "a"), (4, "b"), (5, "c")):
        day_ctx = ctx_for(ctx, day)
        train, *rest = candidate(day_ctx, tag)
        promote(day_ctx, train, *rest)
        versions.append(expected_version(day_ctx, train))

    first, _ = rollback(ctx.config)
    second, _ = rollback(ctx.config)

    assert first.live_record.version == versions[1]
    assert second.live_record.version == versions[0], "a rollback is not a toggle"
    assert Path(second.live_record.model_uri, "saved_model.pb").read_bytes() == b"model a"
    assert live_alias(ctx)[1] == versions[0]
    # The version rolled away from first is still on disk, so it stays within reach.
    assert (models_dir(ctx.config) / versions[2] / "model" / "saved_model.pb").read_bytes() == b"model c"
    with pytest.raises(DeployError, match="no version was live before .*: nothing to roll back to"):
        rollback(ctx.config)


def test_rollback_with_nothing_older_fails_and_changes_nothing(ctx):
    promote(ctx, *candidate(ctx, "a"))
    before = state_path(ctx.config).read_bytes()

    with pytest.raises(DeployError, match="nothing to roll back to"):
        rollback(ctx.config)

    assert state_path(ctx.config).read_bytes() == before


def test_promoting_the_live_version_again_is_a_no_op(ctx):
    inputs = candidate(ctx, "a")
    promote(ctx, *inputs)
    before = state_path(ctx.config).read_bytes()

    assert promote(ctx, *inputs) == str(state_path(ctx.config))

    assert state_path(ctx.config).read_bytes() == before
    assert read_state(ctx.config).slots[Slot.GREEN] is None


def test_hold_decision_is_refused_before_anything_changes(ctx, ctx2):
    promote(ctx, *candidate(ctx, "a"))
    before = state_path(ctx.config).read_bytes()
    versions_before = sorted(p.name for p in models_dir(ctx.config).iterdir())

    with pytest.raises(DeployError, match="decision is HOLD"):
        promote(ctx2, *candidate(ctx2, "b", action=Action.HOLD))

    assert state_path(ctx.config).read_bytes() == before
    assert sorted(p.name for p in models_dir(ctx.config).iterdir()) == versions_before


def test_hold_decision_on_the_first_run_leaves_no_state(ctx):
    with pytest.raises(DeployError, match="HOLD"):
        promote(ctx, *candidate(ctx, "a", action=Action.HOLD))

    assert not state_path(ctx.config).exists()
    assert live_version(ctx.config) is None


def test_a_candidate_gated_against_a_model_that_is_no_longer_live_is_refused(ctx, ctx2):
    stale = candidate(ctx2, "b")  # gated while nothing was live
    promote(ctx, *candidate(ctx, "a"))  # meanwhile an overlapping run promoted "a"
    before = state_path(ctx.config).read_bytes()

    with pytest.raises(DeployError, match="live model changed from None to 2026-01-03-.* re-run the date"):
        promote(ctx2, *stale)

    assert state_path(ctx.config).read_bytes() == before


def test_model_folders_beyond_the_kept_versions_are_collected(ctx):
    keep = ctx.config.deployment.keep_versions
    promoted = []
    for day in range(3, 3 + keep + 2):
        day_ctx = ctx_for(ctx, day)
        train, *rest = candidate(day_ctx, f"m{day}")
        promote(day_ctx, train, *rest)
        promoted.append(expected_version(day_ctx, train))
    # A copy left by a promotion killed before its switch: never live, not the latest candidate.
    orphan = models_dir(ctx.config) / "2026-02-01-000000000000"
    (orphan / "model").mkdir(parents=True)
    day_ctx = ctx_for(ctx, 3 + keep + 2)
    train, *rest = candidate(day_ctx, "last")
    promote(day_ctx, train, *rest)
    promoted.append(expected_version(day_ctx, train))

    on_disk = sorted(p.name for p in models_dir(ctx.config).iterdir() if not p.name.startswith("."))
    assert on_disk == sorted(promoted[-keep:])
    state = read_state(ctx.config)
    assert {r.version for r in state.slots.values()} <= set(on_disk)


def test_a_damaged_state_file_is_named_and_can_be_restored(ctx, ctx2):
    from pipelines.core.deployment_state import restore_state

    promote(ctx, *candidate(ctx, "a"))
    promote(ctx2, *candidate(ctx2, "b"))
    good = read_state(ctx.config)
    state_path(ctx.config).write_text('{"live": "green", "slots": {')  # a disk that filled up mid-write

    with pytest.raises(
        DeployError, match=rf"state is damaged: {state_path(ctx.config)} is not valid JSON.*deploy restore"
    ):
        read_state(ctx.config)

    restored, revision = restore_state(ctx.config)
    assert restored == good == read_state(ctx.config)
    assert revision.parent.name == "states"


def test_stage_names_match_the_output_handles():
    assert (GateOutput.stage, TrainOutput.stage, TransformOutput.stage) == (
        StageName.GATE,
        StageName.TRAIN,
        StageName.TRANSFORM,
    )
