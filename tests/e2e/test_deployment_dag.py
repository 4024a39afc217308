"""The deployment DAG through real `dag.test()` runs: an operator's rollback, switch, canary and a refused
promotion from the Params form, each recorded in the deployment history with who and why."""

from __future__ import annotations

from datetime import date

from conftest import write_config
from dag_runs import parse, register, run

from pipelines.core.config import load_config
from pipelines.core.deployment_state import EventKind, SlotRecord, read_state
from pipelines.deployment import controller
from pipelines.deployment.models import install


def deliver(config, tmp_path, version: str, expected: str | None) -> None:
    model, reference = tmp_path / f"m-{version}", tmp_path / f"r-{version}.parquet"
    model.mkdir()
    (model / "saved_model.pb").write_text(version)
    reference.write_text("rows")
    record = install(config, SlotRecord(version, str(model), str(reference), "2026-01-03", "r"), model, reference)
    controller.deliver(config, record, expected, run_id=f"run-{version}")


def test_operator_actions_from_the_params_form(airflow_db, tmp_path, monkeypatch):
    config_path = write_config(tmp_path)
    register(tmp_path / "configs", "shop", config_path)
    config = load_config(config_path)
    deliver(config, tmp_path, "v1", None)
    deliver(config, tmp_path, "v2", "v1")  # no servers run: switches in the state only
    dag = parse(monkeypatch, tmp_path / "configs", "deployment")

    _, states = run(dag, date(2026, 1, 5), config="shop", action="rollback", reason="bad answers")
    state = read_state(config)
    assert states == {"act": "success"} and state.live_record.version == "v1"
    assert state.history[-1].action is EventKind.ROLLBACK and state.history[-1].reason == "bad answers"

    _, states = run(dag, date(2026, 1, 6), config="shop", action="canary", canary_weight=0.25)
    assert states == {"act": "success"} and read_state(config).routing.canary_weight == 0.25

    _, states = run(dag, date(2026, 1, 7), config="shop", action="switch", reason="canary looked fine")
    state = read_state(config)
    assert state.live_record.version == "v2" and state.routing.canary_weight == 0  # a switch ends the canary
    assert state.history[-1].action is EventKind.PROMOTE and state.history[-1].reason == "canary looked fine"

    _, states = run(dag, date(2026, 1, 8), config="shop", action="promote", version="v9")
    assert states == {"act": "failed"} and read_state(config).live_record.version == "v2"
