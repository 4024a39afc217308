"""Blue-green deployment state: promotion, rollback, idempotence and refusals."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipelines.artifacts import fingerprint_files, write_json_atomic, write_metadata
from pipelines.context import RunContext
from pipelines.deploy import DeployError, live_version, promote, read_state, rollback, state_path
from pipelines.gate import HOLD, PROMOTE, Decision
from pipelines.tracking import registered_model, start_run


def mlflow_run(ctx: RunContext, tag: str) -> str:
    """A real MLflow run with a ``model`` artifact, as training leaves one."""
    import mlflow

    with start_run(ctx) as run:
        mlflow.log_text(f"model {tag}", "model/saved_model.pb")
    return run.info.run_id


def candidate(ctx: RunContext, tag: str, action: str = PROMOTE) -> tuple[str, str, str]:
    """Train, transform and gate directories for one candidate; returns their URIs in promote's order."""
    root = ctx.config.artifact_root / "inputs" / tag
    train = root / "train"
    (train / "model").mkdir(parents=True)
    (train / "model" / "saved_model.pb").write_bytes(f"model {tag}".encode())
    (train / "model" / "variables").mkdir()
    (train / "model" / "variables" / "variables.index").write_bytes(b"\x00\x01" + tag.encode())
    ctx.write_metadata(train, "train", fingerprint_files(train), mlflow_run_id=mlflow_run(ctx, tag))

    transform = root / "transform"
    transform.mkdir()
    pd.DataFrame({"age": [30.0, 40.0], "income": ["<=50K", tag]}).to_parquet(transform / "train_raw.parquet")

    gate = root / "gate"
    decision = Decision(action, [f"decision for {tag}"])
    live = live_version(ctx.config)  # what the gate compared the candidate with
    record = {**decision.to_dict(), "attempt": 1, "live_version": live["version"] if live else None}
    write_json_atomic(gate / "decision.json", record)
    write_metadata(gate, stage="gate", ds=ctx.ds, run_id=ctx.run_id, config_hash="test", fingerprint=f"gate-{tag}")
    return str(train), str(transform), str(gate)


@pytest.fixture
def ctx(small_adult):
    return RunContext.create(small_adult, "2026-01-03")


@pytest.fixture
def ctx2(small_adult):
    return RunContext.create(small_adult, "2026-01-04")


def live_alias(ctx: RunContext) -> tuple[str, str]:
    """The MLflow registry's ``live`` alias: the run it points to and its deployment version tag."""
    import mlflow

    version = mlflow.MlflowClient().get_model_version_by_alias(registered_model(ctx.config), "live")
    return version.run_id, version.tags["deployment_version"]


def expected_version(ctx: RunContext, train_uri: str) -> str:
    return f"{ctx.ds.isoformat()}-{fingerprint_files(Path(train_uri))[:12]}"


def test_no_state_before_the_first_promotion(ctx):
    assert live_version(ctx.config) is None
    assert read_state(ctx.config) == {"live": None, "slots": {"blue": None, "green": None}, "history": []}
    with pytest.raises(DeployError, match="nothing is live"):
        rollback(ctx.config)


def test_first_promotion_goes_to_blue(ctx):
    train, transform, gate = candidate(ctx, "a")

    uri = promote(ctx, train, transform, gate)

    assert uri == str(state_path(ctx.config))
    state = read_state(ctx.config)
    assert state["live"] == "blue"
    assert state["slots"]["green"] is None
    blue = state["slots"]["blue"]
    assert blue["version"] == expected_version(ctx, train)
    assert blue["ds"] == "2026-01-03"
    assert blue["run_id"] == ctx.run_id
    assert live_alias(ctx) == (blue["mlflow_run_id"], blue["version"])
    assert blue["decision"]["action"] == PROMOTE
    assert Path(blue["model_uri"], "saved_model.pb").read_bytes() == b"model a"
    assert Path(blue["model_uri"], "variables", "variables.index").read_bytes() == b"\x00\x01a"
    [event] = state["history"]
    assert {k: event[k] for k in ("action", "from", "to", "version")} == {
        "action": "promote",
        "from": None,
        "to": "blue",
        "version": blue["version"],
    }


def test_live_version_is_the_live_slot_and_its_reference_is_the_training_data(ctx):
    train, transform, gate = candidate(ctx, "a")
    promote(ctx, train, transform, gate)

    live = live_version(ctx.config)

    assert live == read_state(ctx.config)["slots"]["blue"]
    assert Path(live["reference_uri"]).is_file()
    pd.testing.assert_frame_equal(
        pd.read_parquet(live["reference_uri"]), pd.read_parquet(Path(transform) / "train_raw.parquet")
    )
    # The version folder is a copy: the run's inputs may be cleaned up later.
    assert not Path(live["model_uri"]).is_relative_to(Path(train))


def test_second_promotion_goes_to_green_and_keeps_blue(ctx, ctx2):
    promote(ctx, *candidate(ctx, "a"))
    blue_before = read_state(ctx.config)["slots"]["blue"]
    train, transform, gate = candidate(ctx2, "b")

    promote(ctx2, train, transform, gate)

    state = read_state(ctx.config)
    assert state["live"] == "green"
    assert state["slots"]["blue"] == blue_before
    assert state["slots"]["green"]["version"] == expected_version(ctx2, train)
    assert state["slots"]["green"]["version"] != blue_before["version"]
    assert Path(state["slots"]["green"]["model_uri"], "saved_model.pb").read_bytes() == b"model b"
    assert Path(blue_before["model_uri"], "saved_model.pb").read_bytes() == b"model a"
    assert [(e["action"], e["from"], e["to"]) for e in state["history"]] == [
        ("promote", None, "blue"),
        ("promote", "blue", "green"),
    ]
    assert live_version(ctx.config)["version"] == state["slots"]["green"]["version"]


def test_rollback_switches_back_and_appends_history(ctx, ctx2):
    promote(ctx, *candidate(ctx, "a"))
    promote(ctx2, *candidate(ctx2, "b"))
    before = read_state(ctx.config)

    new = rollback(ctx.config, run_id="operator")

    assert new == read_state(ctx.config)
    assert new["live"] == "blue"
    assert new["slots"] == before["slots"]
    assert new["history"][:2] == before["history"]
    last = new["history"][-1]
    assert (last["action"], last["from"], last["to"], last["run_id"]) == (
        "rollback",
        "green",
        "blue",
        "operator",
    )
    assert last["version"] == before["slots"]["blue"]["version"]
    assert live_version(ctx.config) == before["slots"]["blue"]
    blue = before["slots"]["blue"]
    assert live_alias(ctx) == (blue["mlflow_run_id"], blue["version"]), "the registry follows the rollback"

    again = rollback(ctx.config)
    assert again["live"] == "green"
    assert live_alias(ctx)[1] == again["slots"]["green"]["version"]
    assert len(again["history"]) == 4


def test_rollback_with_an_empty_other_slot_fails_and_changes_nothing(ctx):
    promote(ctx, *candidate(ctx, "a"))
    before = state_path(ctx.config).read_bytes()

    with pytest.raises(DeployError, match="slot green is empty"):
        rollback(ctx.config)

    assert state_path(ctx.config).read_bytes() == before


def test_promoting_the_live_version_again_is_a_no_op(ctx):
    inputs = candidate(ctx, "a")
    promote(ctx, *inputs)
    before = state_path(ctx.config).read_bytes()

    assert promote(ctx, *inputs) == str(state_path(ctx.config))

    assert state_path(ctx.config).read_bytes() == before
    assert read_state(ctx.config)["slots"]["green"] is None


def test_hold_decision_is_refused_before_anything_changes(ctx, ctx2):
    promote(ctx, *candidate(ctx, "a"))
    before = state_path(ctx.config).read_bytes()
    models = ctx.config.artifact_root / "deployment" / "models"
    versions_before = sorted(p.name for p in models.iterdir())

    with pytest.raises(DeployError, match="decision is HOLD"):
        promote(ctx2, *candidate(ctx2, "b", action=HOLD))

    assert state_path(ctx.config).read_bytes() == before
    assert sorted(p.name for p in models.iterdir()) == versions_before


def test_hold_decision_on_the_first_run_leaves_no_state(ctx):
    with pytest.raises(DeployError, match="HOLD"):
        promote(ctx, *candidate(ctx, "a", action=HOLD))

    assert not state_path(ctx.config).exists()
    assert live_version(ctx.config) is None


def test_a_candidate_gated_against_a_model_that_is_no_longer_live_is_refused(ctx, ctx2):
    stale = candidate(ctx2, "b")  # gated while nothing was live
    promote(ctx, *candidate(ctx, "a"))  # meanwhile an overlapping run promoted "a"
    before = state_path(ctx.config).read_bytes()

    with pytest.raises(DeployError, match="live model changed from None to 2026-01-03-.* re-run 2026-01-04"):
        promote(ctx2, *stale)

    assert state_path(ctx.config).read_bytes() == before
