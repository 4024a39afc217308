"""Every DAG file loads, parses cheaply (nothing heavy at top level, no DB) and wires the expected graph."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO

DAG_FILES = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))
HEAVY = {
    "tensorflow",
    "apache_beam",
    "tensorflow_transform",
    "great_expectations",
    "mlflow",
    "pandas",
    "sklearn",
}

PROBE = r"""
import importlib.util, json, sys, time
import airflow.sdk
before = set(sys.modules)
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "new": sorted({m.split(".")[0] for m in set(sys.modules) - before})}))
"""


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def test_dag_files_exist():
    assert [p.name for p in DAG_FILES] == ["deployment.py", "ingestion.py", "monitoring.py", "training_pipeline.py"]


def test_dagbag_has_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_dag_id_is_the_file_stem(dagbag):
    assert sorted(dagbag.dag_ids) == sorted(p.stem for p in DAG_FILES)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_nothing_heavy_and_needs_no_database(path):
    # A database URL that cannot work: parsing must not touch the metadata DB.
    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////nonexistent/dir/airflow.db"}
    result = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    heavy = set(probe["new"]) & HEAVY
    assert not heavy, f"{path.name} imports {heavy} at top level"
    assert "pipelines" not in probe["new"], "the library is imported inside tasks, not at parse time"
    print(f"{path.name} parsed in {probe['seconds']:.3f}s")  # measured in benchmarks/dag_parse.py


def test_training_pipeline_wiring_matches_the_stage_table(dagbag):
    from pipelines.runner import BY_NAME, DECISION_STAGE, ROUTES, STAGES

    dag = dagbag.dags["training_pipeline"]
    edges = {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}
    # Each stage's task takes exactly the outputs of the stages the table lists as its inputs ...
    stage_edges = {(BY_NAME[i].task_id, s.task_id) for s in STAGES for i in s.inputs}
    # ... and orchestration adds only: a cheap first check, and the branch on the gate's decision.
    routing = {("check_params", "ingest_window"), (DECISION_STAGE.task_id, "route_decision")}
    routing |= {("route_decision", task_id) for task_id in ROUTES.values()}
    routing |= {(DECISION_STAGE.task_id, "hold_candidate")}  # hold logs the decision's reasons
    # The run card comes after every stage and every route, whatever their states, once check_params has accepted
    # the run (its setup); it never gates anything, nor decides the run's state.
    card = {(t, "write_run_card") for t in {"check_params", *(s.task_id for s in STAGES), *ROUTES.values()}}
    assert edges == stage_edges | routing | card
    writer = dag.get_task("write_run_card")
    assert writer.is_teardown and not writer.on_failure_fail_dagrun and writer.trigger_rule == "all_done_setup_success"
    assert [t.task_id for t in dag.tasks if t.is_setup] == ["check_params"]
    assert set(ROUTES) == {"PROMOTE", "HOLD", "RETRAIN", "INSUFFICIENT_EVIDENCE"}


def test_training_pipeline_schedule_params_and_docs(dagbag):
    from pipelines.core.usecases import registered

    dag = dagbag.dags["training_pipeline"]
    assert dag.catchup is False and dag.max_active_runs == 1
    # No start_date: a data date long past (2014) runs its tasks instead of silently none.
    assert dag.start_date is None and all(t.start_date is None for t in dag.tasks)
    # New data (an event on any use case's asset) or the daily timetable; interval semantics: the time-based
    # run for day D covers [D, D+1) and starts when D is over.
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
    assert type(dag.timetable.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.timetable.expression in ("@daily", "0 0 * * *")
    assert type(dag.timetable.asset_condition).__name__ == "AssetAny"
    assert [a.uri for a in dag.timetable.asset_condition.objects] == ["ct://adult/raw", "ct://retrain/"]
    params = dag.params.dump()
    assert params["window_days"] is None and params["force"] is False and params["attempt"] == 1
    assert params["promote_in_backfill"] is False and params["force_reason"] is None and params["date"] is None
    # The use case is a choice among the registered configs (by name), as the library lists them.
    config = dag.params.get_param("config").schema
    assert params["config"] == "adult" and config["enum"] == registered() == ["adult"]
    sections = {}
    for name in params:
        param = dag.params.get_param(name)
        schema = param.schema
        assert param.description and schema.get("title"), f"{name}: the form shows a title and a description"
        sections.setdefault(schema["section"], []).append(name)
    assert sections == {
        "Data": ["config", "date", "window_days"],
        "Override": ["force", "force_reason"],
        "Advanced": ["promote_in_backfill", "trigger_reason", "attempt"],
    }
    module_doc = (REPO / "dags" / "training_pipeline.py").read_text().split('"""')[1]
    assert dag.doc_md.strip() == module_doc.strip()


@pytest.mark.parametrize("dag_id", ["training_pipeline", "ingestion"])
def test_every_task_alerts_on_failure(dagbag, dag_id):
    from dags._common import RunAlert

    for task in dagbag.dags[dag_id].tasks:
        assert [type(c) for c in task.on_failure_callback] == [RunAlert], task.task_id


def test_the_choice_of_use_cases_is_the_configs_folder_by_name_as_the_library_lists_it(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    from pipelines.core.usecases import registered

    for name in ["loans.yaml", "adult.yaml", "adult.expectations.yaml", "bad name.yaml", "notes.txt"]:
        (tmp_path / name).write_text("name: x\n")
    (tmp_path / "old.yaml").mkdir()
    monkeypatch.setenv("CT_CONFIGS_DIR", str(tmp_path))
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    assert bag.dags["training_pipeline"].params.get_param("config").schema["enum"] == ["adult", "loans"]
    assert registered() == ["adult", "loans"]
    assets = bag.dags["training_pipeline"].timetable.asset_condition.objects
    assert [a.uri for a in assets] == ["ct://adult/raw", "ct://loans/raw", "ct://retrain/"]
    ingestion = bag.dags["ingestion"]
    assert sorted(t.task_id for t in ingestion.tasks) == ["announce_adult", "announce_loans"]
    for task in ingestion.tasks:
        assert [a.uri for a in task.outlets] == [a.uri for a in task.inlets] == [f"ct://{task.task_id[9:]}/raw"]


def test_the_run_deadline_is_opt_in_and_its_interval_comes_from_the_environment(monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    assert DagBag(dag_folder=str(REPO / "dags")).dags["training_pipeline"].deadline is None
    monkeypatch.setenv("CT_RUN_DEADLINE_MINUTES", "45")
    (alert,) = DagBag(dag_folder=str(REPO / "dags")).dags["training_pipeline"].deadline
    assert alert.interval.total_seconds() == 45 * 60
    assert type(alert.reference).__name__ == "DagRunQueuedAtDeadline"
    assert alert.callback.path == "dags._common.RunAlert", "importable by the triggerer (no DAGs folder on its path)"
    monkeypatch.setenv("CT_RUN_DEADLINE_MINUTES", "soon")
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert (
        "CT_RUN_DEADLINE_MINUTES='soon': expected whole minutes"
        in bag.import_errors[str(REPO / "dags" / "training_pipeline.py")]
    )


def test_ingestion_schedule_and_docs(dagbag):
    dag = dagbag.dags["ingestion"]
    assert dag.start_date is None and dag.catchup is False and dag.max_active_runs == 1
    assert type(dag.timetable).__name__ == "CronTriggerTimetable"
    assert dag.timetable.expression in ("@hourly", "0 * * * *")
    assert [t.task_id for t in dag.tasks] == ["announce_adult"]
    module_doc = (REPO / "dags" / "ingestion.py").read_text().split('"""')[1]
    assert dag.doc_md.strip() == module_doc.strip()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("window_days", 0),
        ("attempt", "two"),
        ("date", "2026-13-45"),
        ("date", "yesterday"),
        ("force", "yes"),
        ("config", "configs/adult.yaml"),
        ("config", "/tmp/mine.yaml"),
        ("config", "loans"),
    ],
)
def test_params_reject_bad_values(dagbag, name, value):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags["training_pipeline"].params)
    with pytest.raises(ParamValidationError, match=name):
        params[name] = value
