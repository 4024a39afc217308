"""The DAG writes the run card last: for a blocked run too (which stays failed), never for a refused one."""

from __future__ import annotations

import json
from datetime import date

import pytest
from conftest import SMALL, write_config
from dag_runs import parse, register, run

from pipelines.core.config import load_config
from pipelines.data.demo import write_partitions
from pipelines.reporting.card import CARD_JSON, card_dir, card_path

D = date(2026, 1, 3)


@pytest.fixture
def training_dag(airflow_db, tmp_path, monkeypatch):
    """Registers a config as the use case `case` and parses the training DAG with it."""

    def make(config_path):
        register(tmp_path / "configs", "case", config_path)
        return parse(monkeypatch, tmp_path / "configs")

    return make


def test_a_blocked_run_still_fails_and_its_card_says_why(training_dag, tmp_path, adult_frame):
    config_path = write_config(
        tmp_path, {**SMALL, "thresholds": {**SMALL["thresholds"], "validation": {"min_rows": 10**6}}}
    )
    config = load_config(config_path)
    write_partitions(adult_frame, config, date(2026, 1, 1), rows_per_day=800, days=3)

    dagrun, states = run(training_dag(config_path), D, config="case")

    assert dagrun.state == "failed", "the card, a teardown, does not turn a blocked run into a success"
    assert states["validate_snapshot"] == "failed" and states["promote_blue_green"] == "upstream_failed"
    assert states["write_run_card"] == "success"
    card = json.loads((card_dir(config, D) / CARD_JSON).read_text())
    assert card["outcome"]["kind"] == "blocked" and card["outcome"]["text"].startswith("validation blocked the run: ")
    assert card["data"]["run_id"] == [dagrun.run_id]
    assert "no model was trained" in card_path(config, D).read_text()


def test_a_refused_run_writes_no_card(training_dag, tmp_path):
    config_path = write_config(tmp_path, SMALL)

    dagrun, states = run(training_dag(config_path), D, config="case", windw_days=3)

    assert dagrun.state == "failed" and states["check_params"] == "failed"
    assert states["write_run_card"] == "upstream_failed", "its setup (check_params) refused the run"
    assert not (tmp_path / "artifacts").exists()
