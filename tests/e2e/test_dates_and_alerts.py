"""Data dates are not Airflow's calendar: a 2014 date trains; a run that would process nothing fails first and
alerts, through the `ct_alerts` connection, to a real webhook on 127.0.0.1."""

from __future__ import annotations

from datetime import date

import pytest
from conftest import SMALL, write_config
from dag_runs import Webhook, parse, register, run

from pipelines.core.config import load_config
from pipelines.core.deployment_state import Slot, read_state
from pipelines.data.demo import write_partitions

D = date(2014, 6, 30)


@pytest.fixture
def history(airflow_db, tmp_path, adult_frame):
    """The use case `history`, with five days of data ending 2014-06-30 (long before the DAG was written)."""
    config_path = write_config(tmp_path, SMALL)
    write_partitions(adult_frame, load_config(config_path), date(2014, 6, 26), rows_per_day=800, days=5)
    return register(tmp_path / "configs", "history", config_path)


@pytest.fixture
def webhook(monkeypatch):
    server = Webhook()
    monkeypatch.setenv("AIRFLOW_CONN_CT_ALERTS", server.url)
    yield server
    server.close()


def test_a_past_data_date_runs_every_stage(history, monkeypatch):
    dag = parse(monkeypatch, history.parent)

    dagrun, states = run(dag, D, config="history")

    assert dagrun.state == "success", states
    assert states["ingest_window"] == states["train_model"] == states["promote_blue_green"] == "success"
    assert read_state(load_config(history)).slots[Slot.BLUE].ds == D.isoformat()


def test_a_run_that_would_process_nothing_fails_first_and_alerts_with_task_date_reason_and_log(
    history, monkeypatch, webhook
):
    register(history.parent, "retired", history)
    dag = parse(monkeypatch, history.parent)

    dagrun, states = run(dag, date(2013, 3, 1), config="history")

    assert dagrun.state == "failed"
    assert states["check_params"] == "failed" and states["ingest_window"] == "upstream_failed"
    assert not (history.parent.parent / "artifacts").exists()
    (alert,) = webhook.received
    assert (alert["kind"], alert["dag_id"], alert["task_id"]) == ("task_failed", "training_pipeline", "check_params")
    assert (alert["use_case"], alert["date"], alert["run_id"]) == ("history", "2013-03-01", dagrun.run_id)
    assert alert["reason"].startswith("PipelineError: nothing to process for adult-income at D=2013-03-01: ")
    assert "no partition in the window 2013-02-27..2013-03-01" in alert["reason"]
    assert "partitions exist from 2014-06-26 to 2014-06-30 (5 days): pick a date D in that range" in alert["reason"]
    assert alert["log_url"].endswith(
        f"/runs/{dagrun.run_id.replace(':', '%3A').replace('+', '%2B')}/tasks/check_params?try_number=1"
    )
    assert alert["text"].startswith("training_pipeline: task check_params failed for use case history, D=2013-03-01")

    # A use case that left the configs folder after the DAG was parsed is refused by name, listing the others.
    (history.parent / "retired.yaml").unlink()
    dagrun2, states2 = run(dag, D, config="retired")
    assert dagrun2.state == "failed" and states2["check_params"] == "failed"
    reason = webhook.received[-1]["reason"]
    assert reason.startswith("PipelineError: use case 'retired' is unknown: the registered use cases are ['history']")
