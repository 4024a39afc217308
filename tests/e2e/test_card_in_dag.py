"""The DAG writes the run card last: for a blocked run too (which stays failed), never for a refused one."""

from __future__ import annotations

import json
from datetime import date

import pendulum
import pytest
from conftest import REPO, SMALL, write_config

from pipelines.core.config import load_config
from pipelines.data.demo import write_partitions
from pipelines.reporting.card import CARD_JSON, card_dir, card_path

D = date(2026, 1, 3)


@pytest.fixture(scope="module")
def dag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags")).dags["training_pipeline"]


def run(dag, config_path, **conf):
    dagrun = dag.test(logical_date=pendulum.datetime(D.year, D.month, D.day, tz="UTC"), run_conf=conf)
    return dagrun, {ti.task_id: ti.state for ti in dagrun.get_task_instances()}


def test_a_blocked_run_still_fails_and_its_card_says_why(dag, tmp_path, adult_frame):
    config_path = write_config(
        tmp_path, {**SMALL, "thresholds": {**SMALL["thresholds"], "validation": {"min_rows": 10**6}}}
    )
    config = load_config(config_path)
    write_partitions(adult_frame, config, date(2026, 1, 1), rows_per_day=800, days=3)

    dagrun, states = run(dag, config_path, config=str(config_path))

    assert dagrun.state == "failed", "the card, a teardown, does not turn a blocked run into a success"
    assert states["validate_snapshot"] == "failed" and states["promote_blue_green"] == "upstream_failed"
    assert states["write_run_card"] == "success"
    card = json.loads((card_dir(config, D) / CARD_JSON).read_text())
    assert card["outcome"]["kind"] == "blocked" and card["outcome"]["text"].startswith("validation blocked the run: ")
    assert card["data"]["run_id"] == [dagrun.run_id]
    assert "no model was trained" in card_path(config, D).read_text()


def test_a_refused_run_writes_no_card(dag, tmp_path):
    config_path = write_config(tmp_path, SMALL)

    dagrun, states = run(dag, config_path, config=str(config_path), windw_days=3)

    assert dagrun.state == "failed" and states["check_params"] == "failed"
    assert states["write_run_card"] == "upstream_failed", "its setup (check_params) refused the run"
    assert not (tmp_path / "artifacts").exists()
