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
    assert [p.name for p in DAG_FILES] == ["training_pipeline.py"]


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
    dag = dagbag.dags["training_pipeline"]
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    # Interval semantics: the run for day D covers [D, D+1) and starts when D is over.
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression in ("@daily", "0 0 * * *")
    params = dag.params.dump()
    assert params["window_days"] is None and params["force"] is False and params["attempt"] == 1
    assert params["config"] is None  # the library's default config
    advanced = [n for n in params if dag.params.get_param(n).schema.get("section") == "Advanced"]
    assert advanced == ["force", "force_reason", "attempt", "promote_in_backfill"]
    assert params["promote_in_backfill"] is False and params["force_reason"] is None
    module_doc = (REPO / "dags" / "training_pipeline.py").read_text().split('"""')[1]
    assert dag.doc_md.strip() == module_doc.strip()


@pytest.mark.parametrize(
    ("name", "value"),
    [("window_days", 0), ("attempt", "two"), ("date", "2026-13-45"), ("date", "yesterday"), ("force", "yes")],
)
def test_params_reject_bad_values(dagbag, name, value):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags["training_pipeline"].params)
    with pytest.raises(ParamValidationError, match=name):
        params[name] = value
