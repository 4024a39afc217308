"""Faults and bad input: clear errors, nothing lost, the previous good state left intact, no run mixed
with another, nothing left behind by a killed process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest
from conftest import REPO, SMALL, candidate, entries, ingest_and_validate, write_config

from pipelines.core.artifacts import read_metadata, write_json_atomic
from pipelines.core.config import Beam, load_config
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName, Status
from pipelines.core.deployment_state import DeployError, read_state, state_path
from pipelines.core.outputs import IngestOutput, StaleInput
from pipelines.data.demo import DriftSpec, write_partitions
from pipelines.data.ingest import IngestError, ingest_window
from pipelines.data.validate import validate_snapshot
from pipelines.deployment.models import models_dir
from pipelines.deployment.promote import promote_blue_green
from pipelines.deployment.rollback import rollback
from pipelines.features.transform import transform_features


def leftovers(folder) -> list[str]:
    return [name for name in entries(folder) if name.startswith(".")]


def python(code: str, **kwargs) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (the library's environment, this checkout first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, **kwargs
    )


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], capture_output=True, text=True, cwd=REPO)


def test_a_crash_inside_a_stage_keeps_the_previous_output(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03")
    snapshot, validation = ingest_and_validate(ctx)
    good = read_metadata(transform_features(ctx, snapshot, validation))

    # The same run again, but its Beam runner cannot start: it fails after writing the splits.
    broken = ctx.config.model_copy(update={"beam": Beam(runner="NoSuchRunner")})
    with pytest.raises(ValueError, match="NoSuchRunner"):
        transform_features(RunContext.create(broken, "2026-01-03", run_id="crashing"), snapshot, validation)

    assert read_metadata(ctx.stage_dir(StageName.TRANSFORM)) == good
    assert leftovers(ctx.stage_dir(StageName.TRANSFORM).parent) == []


def test_a_failed_promotion_leaves_the_deployment_state_untouched(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03")
    promote_blue_green(ctx, *candidate(ctx, "a"))
    before = state_path(ctx.config).read_bytes()
    ctx2 = RunContext.create(ctx.config, "2026-01-04")
    train, transform, gate = candidate(ctx2, "b")
    Path(transform, "train_raw.parquet").unlink()  # say, a cleanup raced the run: the copy fails half-way

    with pytest.raises(FileNotFoundError):
        promote_blue_green(ctx2, train, transform, gate)

    assert state_path(ctx.config).read_bytes() == before
    assert [p.name for p in models_dir(ctx.config).iterdir() if p.is_dir()] == [
        read_state(ctx.config).live_record.version
    ]


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

    meta = read_metadata(ingest_window(ctx))

    by_day = {p["ds"]: p for p in meta["partitions"]}
    assert by_day["2026-01-02"]["rows"] == 0 and by_day["2026-01-02"]["status"] == "empty"
    assert meta["warnings"] == [
        "1 day(s) of the window have no rows: 2026-01-02 (empty) (tolerated: max_missing_days 1)"
    ]
    assert by_day["2026-01-03"]["quarantined"] == 1
    quarantine = (IngestOutput(ctx.stage_dir(StageName.INGEST)).quarantine).read_text()
    assert "2026-01-03,6,not valid UTF-8" in quarantine


def test_a_garbage_partition_fails_ingest_clearly_and_a_fixed_rerun_replaces_it(small_adult, adult_frame):
    ctx = RunContext.create(small_adult, "2026-01-03")
    day3 = ctx.config.data.root / ctx.config.data.partition_pattern.format(date="2026-01-03")
    original = day3.read_bytes()
    day3.write_text(original.decode().splitlines()[0] + "\n" + "1,2,3\n" * 300)

    with pytest.raises(IngestError, match=r"300 of 1900 rows .* are malformed.*expected 15 fields, got 3"):
        ingest_window(ctx)
    kept = read_metadata(ctx.stage_dir(StageName.INGEST))
    assert kept["quarantined"] == 300 and kept["status"] == Status.FAILED  # the evidence is kept, marked failed
    with pytest.raises(StaleInput, match="ingest output .* is marked failed"):
        validate_snapshot(ctx, str(ctx.stage_dir(StageName.INGEST)))

    day3.write_bytes(original)
    meta = read_metadata(ingest_window(ctx))
    assert meta["quarantined"] == 0 and meta["rows"] == 2400


def test_a_renamed_column_is_named_by_the_ingest_as_renamed_not_as_nulls(tmp_path, adult_frame):
    path = write_config(tmp_path, SMALL)
    config = load_config(path)
    drifts = [DriftSpec.parse("2026-01-01..2026-01-03:schema:occupation")]
    write_partitions(adult_frame, config, date(2026, 1, 1), 800, days=3, drifts=drifts)
    ctx = RunContext.create(path, "2026-01-03")

    with pytest.raises(IngestError) as excinfo:
        ingest_window(ctx)

    for ds in ("2026-01-01", "2026-01-02", "2026-01-03 (the run's own day)"):
        assert (
            f"ds={ds}: column 'occupation' is missing from the header (renamed? the header has 'occupation_renamed')"
            in str(excinfo.value)
        )
    meta = read_metadata(ctx.stage_dir(StageName.INGEST))
    assert all(p["missing_columns"] == ["occupation"] for p in meta["partitions"])
    assert meta["quarantined"] == 2400 and meta["rows"] == 0, "every row is kept, in the quarantine"
    assert not ctx.stage_dir(StageName.VALIDATE).exists()


def test_promotion_copies_outside_the_lock_and_only_its_switch_waits_so_no_update_is_lost(small_adult):
    import threading
    import time

    from pipelines.core.artifacts import file_lock
    from pipelines.core.deployment_state import deployment_dir

    ctx = RunContext.create(small_adult, "2026-01-03")
    inputs = candidate(ctx, "a")
    marker = {"action": "rollback", "from": "green", "to": "blue", "version": "v0", "run_id": "other", "at": "-"}
    write_json_atomic(state_path(ctx.config), {"live": None, "slots": {"blue": None, "green": None}, "history": []})

    with file_lock(deployment_dir(ctx.config) / ".state.lock"):  # another run is in the middle of a switch
        worker = threading.Thread(target=promote_blue_green, args=(ctx, *inputs))
        worker.start()
        deadline = time.monotonic() + 60
        while not list(models_dir(ctx.config).glob("*/record.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(models_dir(ctx.config).glob("*/record.json")), "the copy does not wait for the lock"
        time.sleep(0.5)
        assert worker.is_alive(), "the switch must wait for the lock"
        state = json.loads(state_path(ctx.config).read_text())
        write_json_atomic(state_path(ctx.config), {**state, "history": [marker]})  # the other run's update
    worker.join(timeout=60)

    history = read_state(ctx.config).history
    assert [e.action for e in history] == ["rollback", "promote"], "the other run's update survives"


def test_many_processes_can_first_use_a_fresh_tracking_store_at_once(tmp_path):
    config = write_config(tmp_path, SMALL)
    code = f"""
        import mlflow
        from pipelines.core.context import RunContext
        from pipelines.core.tracking import start_run
        ctx = RunContext.create({str(config)!r}, "2026-01-03")
        with start_run(ctx):
            mlflow.log_metric("x", 1.0)
        print("ok")
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-c", textwrap.dedent(code)]
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)
    ]
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]

    assert [r[0] for r in results] == [0] * 4, [r[2][-1500:] for r in results if r[0]]
    count = python(
        f"""
        from pipelines.core.config import load_config
        from pipelines.core.tracking import client, experiment_id
        c = load_config({str(config)!r})
        print(len(client(c).search_runs([experiment_id(c)])))
        """
    )
    assert count.stdout.strip() == "4", count.stderr[-1500:]
    assert not list((tmp_path / "artifacts").glob(".mlflow.db.tmp")), "no half-made store left behind"


def test_stages_run_one_by_one_stop_at_a_failed_validation(tmp_path, adult_frame):
    config_path = write_config(tmp_path, SMALL)
    config = load_config(config_path)
    drifts = [DriftSpec.parse("2026-01-01..2026-01-03:missing:occupation")]  # validation will fail
    write_partitions(adult_frame, config, date(2026, 1, 1), 800, days=3, drifts=drifts)
    common = ("--config", str(config_path), "--date", "2026-01-03")

    assert cli("ingest", *common).returncode == 0
    failed = cli("validate", *common)
    assert failed.returncode == 1 and "occupation" in failed.stderr

    transform = cli("transform", *common)
    assert transform.returncode == 1
    assert "validate output" in transform.stderr and "is marked failed" in transform.stderr
    for stage in ("train", "evaluate", "gate", "promote"):
        result = cli(stage, *common)
        assert result.returncode == 1 and "Traceback" not in result.stderr, (stage, result.stderr[-1500:])
    assert not state_path(config).exists(), "nothing was promoted"


def test_an_interrupted_rerun_is_never_taken_for_one_run(small_adult):
    from pipelines.reporting.summary import render
    from pipelines.runner import BY_NAME, run_pipeline, run_stage

    ctx = RunContext.create(small_adult, "2026-01-03")
    run_pipeline(ctx)
    live = read_state(ctx.config)
    # New rows arrive for D, D is re-run, and the re-run dies right after ingest (as a kill -9 would leave it).
    partition = ctx.config.data.partition(ctx.ds)
    partition.write_text(partition.read_text() + partition.read_text().splitlines()[1] + "\n")
    ingest_window(ctx)

    for stage in ("train", "evaluate", "gate", "promote"):
        with pytest.raises(StaleInput, match="replaced or removed|itself out of date"):
            run_stage(ctx, BY_NAME[StageName(stage)])
    text = render(ctx.config, ctx.ds)
    for stage in ("drift", "validate", "transform", "train", "evaluate", "gate"):
        assert f"OUT OF DATE {stage}" in text, text
    assert "decision" not in text, "an old decision is not reported beside the new ingest"
    assert read_state(ctx.config) == live

    run_pipeline(RunContext.create(ctx.config, "2026-01-03", run_id="rerun"))  # the re-run, completed
    assert "OUT OF DATE" not in render(ctx.config, ctx.ds)


def test_what_a_killed_writer_leaves_is_removed_by_the_next_writer(tmp_path):
    final = tmp_path / "runs" / "2026-01-03" / "transform"
    result = python(
        f"""
        import os, signal
        from pathlib import Path
        from pipelines.core.artifacts import atomic_dir
        with atomic_dir(Path({str(final)!r})) as out:
            (out / "half.parquet").write_bytes(b"half a file")
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    assert result.returncode == -signal.SIGKILL
    assert leftovers(final.parent) == [".transform.tmp"] and not final.exists()

    from pipelines.core.artifacts import atomic_dir

    with atomic_dir(final) as out:
        (out / "whole.parquet").write_bytes(b"a whole file")

    assert leftovers(final.parent) == [] and entries(final) == ["whole.parquet"]


def test_a_swap_cut_between_its_two_renames_is_repaired(tmp_path):
    from pipelines.core.artifacts import atomic_dir

    final = tmp_path / "train"
    with atomic_dir(final) as out:
        (out / "model").write_text("good")
    final.rename(tmp_path / ".train.old")  # killed after moving the old output aside, before the new one arrived

    with pytest.raises(RuntimeError), atomic_dir(final):
        raise RuntimeError("this run fails too")

    assert (final / "model").read_text() == "good", "the previous good output is back"
    assert leftovers(tmp_path) == []


def test_an_mlflow_run_left_running_by_a_killed_training_is_failed_by_the_next(small_adult):
    from pipelines.core.tracking import client, start_run

    result = python(
        f"""
        import os, signal
        from pipelines.core.context import RunContext
        from pipelines.core.tracking import start_run
        with start_run(RunContext.create({str(small_adult)!r}, "2026-01-03")) as run:
            print(run.info.run_id, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    assert result.returncode == -signal.SIGKILL
    abandoned = result.stdout.split()[0]
    ctx = RunContext.create(small_adult, "2026-01-03")
    assert client(ctx.config).get_run(abandoned).info.status == "RUNNING"

    with start_run(ctx) as run:
        mine = run.info.run_id
        assert client(ctx.config).get_run(mine).info.status == "RUNNING", "a live run is left alone"

    dead = client(ctx.config).get_run(abandoned)
    assert dead.info.status == "FAILED"
    assert "died before the run ended" in dead.data.tags["failure_reason"]
