"""The local runner's validation worker: it validates in another process while the runner loads the training
stack, gives the same result as validating in process, and raises the stage's own error."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from conftest import REPO

from pipelines import CHATTY_LOGGERS
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName, Status
from pipelines.core.outputs import IngestOutput, ValidationOutput
from pipelines.data.ingest import ingest_window
from pipelines.data.validate import ValidationFailed, validate_snapshot
from pipelines.runner import BY_NAME, configure_logging, run_stage_beside

BESIDE = """
import json, logging, sys
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName
from pipelines.data.ingest import ingest_window
from pipelines.runner import BY_NAME, configure_logging, run_stage_beside

configure_logging(logging.INFO)
ctx = RunContext.create(sys.argv[1], "2026-01-03")
seen = {}
def meanwhile():
    seen["validated_when_loading_began"] = ctx.stage_dir(StageName.VALIDATE).exists()
uris = {StageName.INGEST: ingest_window(ctx)}
uri = run_stage_beside(ctx, BY_NAME[StageName.VALIDATE], uris, meanwhile)
print(json.dumps({"uri": uri, "gx_loaded_here": "great_expectations" in sys.modules, **seen}))
"""


def test_validation_runs_in_a_worker_while_the_runner_loads_and_matches_validating_in_process(small_adult):
    done = subprocess.run(
        [sys.executable, "-c", BESIDE, str(small_adult)], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["gx_loaded_here"] is False, "validation ran in the runner's own process"
    assert outcome["validated_when_loading_began"] is False, "the runner waited for validation before loading"
    assert "== validate (2026-01-03, attempt 1, in a worker process)" in done.stderr
    assert "validation: " in done.stderr, "the worker's log lines reach the runner's stderr"

    beside = ValidationOutput(outcome["uri"])
    assert beside.metadata()["status"] == Status.SUCCEEDED
    in_worker = json.loads(beside.result_path.read_text())
    ctx = RunContext.create(small_adult, "2026-01-03")
    validate_snapshot(ctx, str(ctx.stage_dir(StageName.INGEST)))  # again, in this process
    in_process = json.loads(ValidationOutput(str(ctx.stage_dir(StageName.VALIDATE))).result_path.read_text())
    assert in_worker == in_process


def test_a_blocking_failure_in_the_worker_is_raised_by_the_runner_with_its_message(small_adult):
    ctx = RunContext.create(small_adult, "2026-01-03")
    snapshot = IngestOutput(ingest_window(ctx))
    rows = snapshot.read_snapshot()
    rows.loc[:9, "age"] = 140.0  # out of the declared 17..90, all on 2026-01-01
    rows.to_parquet(snapshot.snapshot, index=False)
    loaded = []

    with pytest.raises(ValidationFailed, match=r"ds=2026-01-01: 10 of 800 rows \(1.2%\) have age outside"):
        run_stage_beside(ctx, BY_NAME[StageName.VALIDATE], {StageName.INGEST: snapshot.uri}, lambda: loaded.append(1))

    assert loaded == [1]
    assert ValidationOutput(str(ctx.stage_dir(StageName.VALIDATE))).metadata()["status"] == Status.FAILED


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_chatty_libraries_log_only_when_verbose(level, monkeypatch):
    for name in CHATTY_LOGGERS:  # put back as they were afterwards
        monkeypatch.setattr(logging.getLogger(name), "level", logging.getLogger(name).level)
    configure_logging(level)
    for name in CHATTY_LOGGERS:
        assert logging.getLogger(name).level == (logging.DEBUG if level == logging.DEBUG else logging.WARNING)


def test_importing_the_library_quiets_chatty_libraries_for_airflow_tasks_too():
    probe = "import logging, pipelines; print([logging.getLogger(n).level for n in pipelines.CHATTY_LOGGERS])"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [logging.WARNING] * len(CHATTY_LOGGERS)
