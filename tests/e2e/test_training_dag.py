"""The whole training DAG through `dag.test()` on a few days of real Adult data in tmp_path.

Each test registers its config as the use case `case` in a tmp configs folder, then parses the DAG.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from conftest import SMALL, write_config
from dag_runs import parse, register

from pipelines.core import artifacts
from pipelines.core.config import load_config
from pipelines.core.deployment_state import Slot, read_state
from pipelines.data.demo import write_partitions
from pipelines.reporting import summary

D1, D2, D3 = date(2026, 1, 3), date(2026, 1, 4), date(2026, 1, 5)
STAGES = ["ingest", "drift", "validate", "transform", "train", "evaluate", "gate"]


CASE = "case"


@pytest.fixture
def training_dag(airflow_db, tmp_path, monkeypatch):
    """Registers a config as the use case `case` and parses the training DAG with it."""

    def make(config_path: Path, *others: str):
        for name in (CASE, *others):
            register(tmp_path / "configs", name, config_path)
        return parse(monkeypatch, tmp_path / "configs")

    return make


def run(dag, ds: date, **conf):
    import dag_runs

    return dag_runs.run(dag, ds, **{"config": CASE, **conf})


def report(config, ds: date, stage: str, name: str) -> dict:
    return json.loads((artifacts.stage_dir(config.artifact_root, ds, stage) / name).read_text())


def stage_meta(config, ds: date) -> dict[str, dict]:
    return {s: artifacts.read_metadata(artifacts.stage_dir(config.artifact_root, ds, s)) for s in STAGES}


def fingerprints(config, ds: date) -> dict[str, str]:
    return {stage: record["fingerprint"] for stage, record in stage_meta(config, ds).items()}


def test_first_run_promotes_to_blue_second_is_gated_against_it_and_reruns_are_identical(
    training_dag, tmp_path, adult_frame
):
    config_path = write_config(tmp_path, SMALL)
    dag = training_dag(config_path)
    config = load_config(config_path)
    write_partitions(adult_frame, config, date(2026, 1, 1), rows_per_day=800, days=5)

    # D1: nothing is live yet, so no drift reference, and the candidate becomes blue.
    dagrun, states = run(dag, D1)
    assert dagrun.state == "success", states
    assert states["promote_blue_green"] == "success"
    assert states["hold_candidate"] == states["trigger_retrain"] == "skipped"
    meta = stage_meta(config, D1)
    for stage, record in meta.items():
        assert record["ds"] == D1.isoformat() and record["run_id"] == dagrun.run_id, stage
        assert record["config_hash"] == config.fingerprint and len(record["fingerprint"]) == 64, stage
    assert meta["ingest"]["rows"] + meta["ingest"]["quarantined"] == 3 * 800
    assert [p["ds"] for p in meta["ingest"]["partitions"]] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert meta["transform"]["train_rows"] + meta["transform"]["test_rows"] == meta["ingest"]["rows"]
    assert meta["transform"]["inputs"]["snapshot"]["fingerprint"] == meta["ingest"]["fingerprint"]
    run1 = artifacts.run_dir(config.artifact_root, D1)
    assert json.loads((run1 / "drift" / "drift.json").read_text())["verdict"] == "no_reference"
    assert (run1 / "validate" / "data_docs" / "index.html").exists()
    assert (run1 / "transform" / "tft" / "transform_fn" / "saved_model.pb").exists()
    assert (run1 / "train" / "model" / "saved_model.pb").exists()
    evaluation = json.loads((run1 / "evaluate" / "evaluation.json").read_text())
    assert "live" not in evaluation["overall"] and evaluation["overall"]["candidate"]["roc_auc"] > 0.8
    assert set(evaluation["slices"]) == {"sex", "race", "age", "sex x race"}
    decision = json.loads((run1 / "gate" / "decision.json").read_text())
    assert decision["action"] == "PROMOTE"

    state = read_state(config)
    assert state.live is Slot.BLUE and state.slots[Slot.GREEN] is None
    blue = state.slots[Slot.BLUE]
    assert blue.ds == D1.isoformat() and Path(blue.model_uri, "saved_model.pb").exists()

    import mlflow

    mlflow.set_tracking_uri(config.tracking_uri)
    mlflow_run = mlflow.get_run(meta["train"]["mlflow_run_id"])
    assert mlflow_run.data.params["epochs"] == "3"
    assert mlflow_run.data.tags["decision"] == "PROMOTE" and mlflow_run.data.tags["ds"] == D1.isoformat()
    candidate_auc = evaluation["overall"]["candidate"]["roc_auc"]
    assert mlflow_run.data.metrics["test_roc_auc"] == pytest.approx(candidate_auc)
    client = mlflow.MlflowClient()
    logged = {a.path for a in client.list_artifacts(mlflow_run.info.run_id, "model")}
    assert "model/saved_model.pb" in logged
    live = client.get_model_version_by_alias(config.name, "live")
    assert live.run_id == mlflow_run.info.run_id and live.tags["deployment_version"] == blue.version

    # Re-running D1: the same inputs give the same model, so the promotion is a no-op ("already live").
    first = fingerprints(config, D1)
    rerun, _ = run(dag, D1)
    assert rerun.state == "success"
    again = fingerprints(config, D1)
    for stage in ("ingest", "validate", "transform", "train"):
        assert again[stage] == first[stage], f"{stage} changed on a re-run with the same inputs"
    assert read_state(config) == state, "re-promoting the live version changes nothing"
    # Now the live model (an input of drift, evaluate and gate) is D1's own: one more re-run is identical everywhere.
    rerun2, _ = run(dag, D1)
    assert rerun2.state == "success"
    assert fingerprints(config, D1) == again
    assert read_state(config) == state
    assert not list(artifacts.run_dir(config.artifact_root, D1).glob(".*.tmp")), "no temporary folders left"

    # D2: drift is measured against blue's training rows, and the candidate is gated against blue.
    dagrun2, states2 = run(dag, D2)
    assert dagrun2.state == "success", states2
    run2 = artifacts.run_dir(config.artifact_root, D2)
    drift = json.loads((run2 / "drift" / "drift.json").read_text())
    assert drift["verdict"] in ("none", "warn", "drift") and drift["reference"]["version"] == blue.version
    evaluation2 = json.loads((run2 / "evaluate" / "evaluation.json").read_text())
    assert evaluation2["live_version"] == blue.version
    assert "difference" in evaluation2["overall"]
    decision2 = json.loads((run2 / "gate" / "decision.json").read_text())
    state2 = read_state(config)
    if decision2["action"] == "PROMOTE":
        assert states2["promote_blue_green"] == "success" and states2["hold_candidate"] == "skipped"
        assert state2.live is Slot.GREEN and state2.slots[Slot.BLUE] == blue  # rollback target kept
    else:
        assert decision2["action"] == "HOLD" and states2["hold_candidate"] == "success"
        assert state2 == state

    text = summary.render(config, D2)
    assert f"(live model {blue.version})" in text and f"decision   {decision2['action']}" in text
    assert "OUT OF DATE" not in text
    assert stage_meta(config, D2)["ingest"]["run_id"] == dagrun2.run_id


def test_failed_validation_blocks_the_run_and_keeps_the_live_model(training_dag, tmp_path, adult_frame):
    config_path = write_config(tmp_path, SMALL)
    dag = training_dag(config_path)
    config = load_config(config_path)
    # D3's partition is shifted far out of the declared age range (17..90).
    write_partitions(adult_frame, config, date(2026, 1, 1), rows_per_day=800, days=5)
    partition = config.data.root / f"ds={D3.isoformat()}" / "part-0.csv"
    lines = partition.read_text().splitlines()
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:]]
    for row in rows:
        row[header.index("age")] = str(float(row[header.index("age")]) + 100)
    partition.write_text("\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n")

    dagrun, states = run(dag, D3)
    assert dagrun.state == "failed"
    assert states["ingest_window"] == "success" and states["validate_snapshot"] == "failed"
    assert states["transform_features"] == states["promote_blue_green"] == "upstream_failed"
    result = report(config, D3, "validate", "validation.json")
    failed = {(e["column"], e["expectation"]) for e in result["expectations"] if not e["success"]}
    assert failed == {("age", "expect_column_values_to_be_between")}
    assert f"ds={D3.isoformat()}: 800 of 800 rows (100.0%) have age outside [17.0, 90.0]" in result["blocked"][1]
    assert not artifacts.stage_dir(config.artifact_root, D3, "train").exists()
    assert read_state(config).live is None


def test_failed_candidate_triggers_a_bounded_retrain(training_dag, tmp_path, adult_frame):
    # Floors no model can reach: attempt 1 must ask for a retrain, as a new run for the same D.
    overrides = {
        **SMALL,
        "thresholds": {
            **SMALL["thresholds"],
            "gate": {**SMALL["thresholds"]["gate"], "floors": {"accuracy": 0.999}, "max_retrains": 1},
        },
    }
    config_path = write_config(tmp_path, overrides)
    dag = training_dag(config_path)
    config = load_config(config_path)
    write_partitions(adult_frame, config, date(2026, 1, 1), rows_per_day=800, days=3)

    dagrun, states = run(dag, D1)
    assert dagrun.state == "success"
    assert states["trigger_retrain"] == "success" and states["promote_blue_green"] == "skipped"
    decision = report(config, D1, "gate", "decision.json")
    assert decision["action"] == "RETRAIN" and decision["attempt"] == 1

    from airflow.models.dagrun import DagRun

    triggered = [r for r in DagRun.find(dag_id="training_pipeline") if (r.conf or {}).get("attempt") == 2]
    assert len(triggered) == 1
    assert triggered[0].conf["date"] == D1.isoformat() and triggered[0].conf["config"] == CASE

    # The retrain run itself (attempt 2) is the last allowed one: it holds instead of looping.
    retrain, states2 = run(dag, date(2026, 1, 9), **{"date": D1.isoformat(), "attempt": 2})
    assert retrain.state == "success" and states2["hold_candidate"] == "success"
    decision2 = report(config, D1, "gate", "decision.json")
    assert decision2["action"] == "HOLD" and decision2["attempt"] == 2
    assert any("no retrains left" in r for r in decision2["reasons"])
    assert read_state(config).live is None

    # An operator can override the gate from the Params form; the override is recorded.
    options = {"date": D1.isoformat(), "attempt": 2, "force": True, "force_reason": "INC-7 hotfix"}
    forced, states3 = run(dag, date(2026, 1, 10), **options)
    assert forced.state == "success" and states3["promote_blue_green"] == "success"
    decision3 = report(config, D1, "gate", "decision.json")
    assert decision3["action"] == "PROMOTE" and decision3["forced"] is True
    # dag.test() triggers as the user "dag_test"; a UI trigger records the logged-in user.
    assert decision3["reasons"][0] == "forced by dag_test (INC-7 hotfix); the gate said HOLD:"
    assert (decision3["forced_by"], decision3["force_reason"]) == ("dag_test", "INC-7 hotfix")
    assert read_state(config).slots[Slot.BLUE].decision["forced"] is True


def test_a_run_with_an_undeclared_option_or_an_unregistered_use_case_is_refused_before_any_work(training_dag, tmp_path):
    from airflow.sdk.exceptions import ParamValidationError

    config_path = write_config(tmp_path, SMALL)  # a valid config: only the request is wrong
    dag = training_dag(config_path, "retired")
    assert dag.params.get_param("config").schema["enum"] == [CASE, "retired"]

    dagrun, states = run(dag, D1, windw_days=3)
    assert dagrun.state == "failed"
    assert states["check_params"] == "failed" and states["ingest_window"] == "upstream_failed"

    # A path (or any name not registered when the DAG was parsed) is not even a run: Airflow refuses the trigger.
    for request in (str(config_path), "/etc/passwd", "nowhere"):
        with pytest.raises(ParamValidationError, match=r"is not one of \['case', 'retired'\]"):
            run(dag, D1, config=request)

    # A use case removed since the DAG was parsed: check_params refuses it on the worker.
    (tmp_path / "configs" / "retired.yaml").unlink()
    dagrun2, states2 = run(dag, D1, config="retired")
    assert dagrun2.state == "failed" and states2["check_params"] == "failed"
    assert states2["ingest_window"] == "upstream_failed"
    assert not (tmp_path / "artifacts").exists()
