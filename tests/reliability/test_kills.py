"""Real processes killed at random points of ingest, transform, train and promotion leave nothing inconsistent.

A few dozen trials here (``KILL_TRIALS`` to change); ``make soak`` runs 100. See ``kill_trials.py``.
"""

from __future__ import annotations

import os

import pytest
from kill_trials import CANDIDATES, STEPS, check, run_trials

from pipelines.core.config import load_config
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName
from pipelines.core.outputs import TrainOutput


@pytest.mark.slow
def test_random_kills_leave_state_valid_outputs_whole_and_the_next_run_working(tmp_path):
    trials = int(os.environ.get("KILL_TRIALS", "16"))

    tally = run_trials(trials, tmp_path, seed=int(os.environ.get("KILL_SEED", "0")))

    print(tally.line())
    assert tally.problems == []
    assert tally.trials == trials and set(tally.by_step) == {str(s) for s in STEPS}
    assert tally.killed >= trials // 2, "most kills must land inside a step, or the trials prove little"

    # The check itself can fail: a model file cut short behind its metadata's back is reported.
    config = load_config(tmp_path / "config.yaml")
    weights = next(
        TrainOutput(RunContext.create(config, CANDIDATES[0]).stage_dir(StageName.TRAIN)).model_dir.rglob("*.data-*")
    )
    weights.write_bytes(weights.read_bytes()[:-10])
    assert any("train output of" in problem and "does not match its metadata" in problem for problem in check(config))
