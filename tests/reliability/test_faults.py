"""Faults and bad input: clear errors, nothing lost, the previous good state left intact."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest
from conftest import SMALL, write_config

from pipelines.artifacts import read_metadata, write_json_atomic
from pipelines.config import Beam, load_config
from pipelines.context import RunContext
from pipelines.data import DriftSpec, write_partitions
from pipelines.deploy import DeployError, promote, read_state, rollback, state_path
from pipelines.ingest import QUARANTINE, IngestError, ingest
from pipelines.transform import transform
from pipelines.validate import ValidationFailed, validate


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_crash_inside_a_stage_keeps_the_previous_output(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03")
    snapshot = ingest(ctx)
    good = read_metadata(transform(ctx, snapshot))

    # The same run again, but its Beam runner cannot start: it fails after writing the splits.
    broken = ctx.config.model_copy(update={"beam": Beam(runner="NoSuchRunner")})
    with pytest.raises(ValueError, match="NoSuchRunner"):
        transform(RunContext.create(broken, "2026-01-03", run_id="crashing"), snapshot)

    assert read_metadata(ctx.stage_dir("transform")) == good
    assert leftovers(ctx.stage_dir("transform").parent) == []


def test_a_failed_promotion_leaves_the_deployment_state_untouched(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03")
    state_path(ctx.config).parent.mkdir(parents=True)
    before = {"live": "blue", "slots": {"blue": {"version": "v1"}, "green": None}, "history": []}
    write_json_atomic(state_path(ctx.config), before)
    # The candidate's folders are gone (say, a cleanup raced the run): the copy fails half-way.
    gate = ctx.config.artifact_root / "gate"
    decision = {"action": "PROMOTE", "reasons": [], "attempt": 1, "live_version": "v1"}
    write_json_atomic(gate / "decision.json", decision)
    (ctx.config.artifact_root / "train").mkdir()
    write_json_atomic(ctx.config.artifact_root / "train" / "metadata.json", {"fingerprint": "f" * 64})

    with pytest.raises(FileNotFoundError):
        promote(ctx, str(ctx.config.artifact_root / "train"), str(ctx.config.artifact_root / "nowhere"), str(gate))

    assert read_state(ctx.config) == before
    models = state_path(ctx.config).parent / "models"
    assert not models.exists() or list(models.iterdir()) == []


def test_an_interrupted_state_write_keeps_the_old_state(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03")
    path = state_path(ctx.config)
    write_json_atomic(path, {"live": None, "slots": {"blue": None, "green": None}, "history": []})

    class Unwritable:
        def __str__(self):
            raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_json_atomic(path, {"live": "blue", "slots": {"blue": Unwritable()}})

    assert json.loads(path.read_text())["live"] is None
    assert leftovers(path.parent) == []
    with pytest.raises(DeployError, match="nothing is live"):
        rollback(ctx.config)


def test_undecodable_and_empty_partitions_are_quarantined_or_recorded(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03")
    data = ctx.config.data
    day2 = data.root / data.partition_pattern.format(date="2026-01-02")
    day2.write_bytes(b"")  # an empty file: no header, no rows
    day3 = data.root / data.partition_pattern.format(date="2026-01-03")
    content = day3.read_bytes().splitlines(keepends=True)
    content[5] = b"\xff\xfe" + content[5]  # not UTF-8
    day3.write_bytes(b"".join(content))

    meta = read_metadata(ingest(ctx))

    by_day = {p["ds"]: p for p in meta["partitions"]}
    assert by_day["2026-01-02"]["rows"] == 0 and by_day["2026-01-02"]["status"] == "read"
    assert by_day["2026-01-03"]["quarantined"] == 1
    quarantine = (ctx.stage_dir("ingest") / QUARANTINE).read_text()
    assert "2026-01-03,6,not valid UTF-8" in quarantine


def test_a_garbage_partition_fails_ingest_clearly_and_a_fixed_rerun_replaces_it(small_adult, adult_frame):
    ctx = RunContext.create(small_adult, "2026-01-03")
    day3 = ctx.config.data.root / ctx.config.data.partition_pattern.format(date="2026-01-03")
    original = day3.read_bytes()
    day3.write_text(original.decode().splitlines()[0] + "\n" + "1,2,3\n" * 300)

    with pytest.raises(IngestError, match=r"300 of 1900 rows .* are malformed.*expected 15 fields, got 3"):
        ingest(ctx)
    assert read_metadata(ctx.stage_dir("ingest"))["quarantined"] == 300  # the evidence is kept

    day3.write_bytes(original)
    meta = read_metadata(ingest(ctx))
    assert meta["quarantined"] == 0 and meta["rows"] == 2400


def test_a_renamed_column_is_caught_by_validation_naming_it(tmp_path, adult_frame):
    path = write_config(tmp_path, SMALL)
    config = load_config(path)
    drifts = [DriftSpec.parse("2026-01-01..2026-01-03:schema:occupation")]
    write_partitions(adult_frame, config, date(2026, 1, 1), 800, days=3, drifts=drifts)
    ctx = RunContext.create(path, "2026-01-03")

    snapshot = ingest(ctx)
    meta = read_metadata(snapshot)
    assert all(p["missing_columns"] == ["occupation"] for p in meta["partitions"])
    assert all(p["unexpected_columns"] == ["occupation_renamed"] for p in meta["partitions"])
    with pytest.raises(ValidationFailed, match="occupation: expect_column_values_to_not_be_null failed"):
        validate(ctx, snapshot)
    assert not ctx.stage_dir("transform").exists()


def test_promotion_waits_for_the_state_lock_so_no_update_is_lost(small_adult):
    import fcntl
    import threading
    import time

    import mlflow

    from pipelines.artifacts import fingerprint_files
    from pipelines.deploy import deployment_dir
    from pipelines.gate import Decision
    from pipelines.tracking import start_run

    ctx = RunContext.create(small_adult, "2026-01-03")
    root = ctx.config.artifact_root / "candidate"
    (root / "train" / "model").mkdir(parents=True)
    (root / "train" / "model" / "saved_model.pb").write_bytes(b"model")
    with start_run(ctx) as run:
        mlflow.log_text("model", "model/saved_model.pb")
    ctx.write_metadata(root / "train", "train", fingerprint_files(root / "train"), mlflow_run_id=run.info.run_id)
    (root / "transform").mkdir()
    pd.DataFrame({"age": [30.0]}).to_parquet(root / "transform" / "train_raw.parquet")
    write_json_atomic(root / "gate" / "decision.json", {**Decision("PROMOTE", ["ok"]).to_dict(), "attempt": 1})
    marker = {"action": "rollback", "from": "green", "to": "blue", "version": "v0", "run_id": "other", "at": "-"}
    write_json_atomic(state_path(ctx.config), {"live": None, "slots": {"blue": None, "green": None}, "history": []})

    lock = (deployment_dir(ctx.config) / ".state.lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # another run is in the middle of a switch
    worker = threading.Thread(target=promote, args=(ctx, *(str(root / s) for s in ("train", "transform", "gate"))))
    worker.start()
    time.sleep(1.0)  # time enough to copy, register and switch, were it not waiting for the lock
    assert worker.is_alive(), "the promotion must be waiting for the lock, not finished or failed"
    assert not (deployment_dir(ctx.config) / "models").exists(), "nothing is copied before the lock is held"
    state = read_state(ctx.config)
    write_json_atomic(state_path(ctx.config), {**state, "history": [marker]})  # the other run's update
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
    worker.join(timeout=60)

    history = read_state(ctx.config)["history"]
    assert [e["action"] for e in history] == ["rollback", "promote"], "the other run's update survives"
