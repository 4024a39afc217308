"""The lifecycle scenario end to end on small data, through real Airflow runs (`airflow dags test` of the
training and monitoring DAGs), the serving stack and replayed traffic: v1 serves, drift raises the alarm that
asks for retraining, v2 goes live through skew check, shadow and canary, a degraded v3 is held, and a forced
bad promotion is rolled back by the post-promotion watch."""

from __future__ import annotations

import json

import pytest
from conftest import ADULT_CONFIG, ADULT_WHEEL

from pipelines.core.config import load_config
from pipelines.core.deployment_state import EventKind, read_state
from pipelines.lifecycle import Lifecycle
from pipelines.monitoring.loop import ledger_path


@pytest.mark.slow
def test_the_loop_closes_by_itself(airflow_db, tmp_path):
    demo = Lifecycle(ADULT_CONFIG, tmp_path / "lifecycle", ADULT_WHEEL, small=True)

    timeline = demo.run()

    config = load_config(tmp_path / "lifecycle" / "configs" / "lifecycle.yaml")
    state = read_state(config)
    kinds = [(e.action, e.by) for e in state.history]
    promotions = [e for e in state.history if e.action is EventKind.PROMOTE]
    v1, v2, forced = (e.version for e in promotions)
    # v2 went live through every check; the forced version was rolled back by the watch, so v2 is live again.
    assert state.live_record.version == v2 and kinds[-1] == (EventKind.ROLLBACK, "monitoring")
    checks = promotions[1].checks
    assert checks["skew"]["max_abs_diff"] <= config.deployment.skew_tolerance
    assert checks["shadow"]["compared"] >= 30 and [s["weight"] for s in checks["canary"]] == [0.25, 0.5]
    assert "post-promotion watch" in state.history[-1].reason and forced not in (v1, v2)
    # The drift alarm asked for the retraining, and v2's run card says so.
    [request] = json.loads(ledger_path(config).read_text())["requests"]
    assert any("drift" in r for r in request["reasons"])
    card = json.loads((config.artifact_root / "runs" / request["ds"] / "card" / "run_card.json").read_text())
    assert card["data"]["trigger"].startswith("monitoring alarm: ")
    # The degraded candidate was held by the gate (not by policy), and the timeline tells the story in order.
    held = [line for _, line in timeline if line.startswith("v3 (degraded)")]
    assert held and "gate HOLD" in held[0]
    steps = [line.split(" ")[0] for _, line in timeline]
    assert steps.index("v1") < steps.index("retraining") < steps.index("v2") < steps.index("post-promotion")
    assert all(r.endswith("report.html") for r in demo.reports) and len(demo.reports) == 3
    # The monitoring DAG emitted the retraining request as an event on the ct://retrain asset, once.
    [event] = retrain_events()
    assert event.source_dag_id == "monitoring" and event.source_task_id == "request_training"
    assert event.extra["use_case"] == "lifecycle" and event.extra["ds"] == request["ds"]
    assert event.extra["reason"] == card["data"]["trigger"]


def retrain_events():
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
        events = query.filter(AssetModel.uri == "ct://retrain/").all()
        session.expunge_all()
        return events
