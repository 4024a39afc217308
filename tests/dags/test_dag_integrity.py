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


def test_training_pipeline_graph(dagbag):
    dag = dagbag.dags["training_pipeline"]
    edges = {(t.task_id, d) for t in dag.tasks for d in t.downstream_task_ids}
    assert edges == {
        ("ingest_window", "check_drift"),
        ("ingest_window", "validate_snapshot"),
        ("ingest_window", "transform_features"),
        ("validate_snapshot", "transform_features"),
        ("transform_features", "train_model"),
        ("transform_features", "evaluate_model"),
        ("transform_features", "promote_blue_green"),
        ("train_model", "evaluate_model"),
        ("train_model", "promote_blue_green"),
        ("evaluate_model", "gate_candidate"),
        ("check_drift", "gate_candidate"),
        ("gate_candidate", "route_decision"),
        ("gate_candidate", "promote_blue_green"),
        ("gate_candidate", "hold_candidate"),
        ("route_decision", "promote_blue_green"),
        ("route_decision", "hold_candidate"),
        ("route_decision", "trigger_retrain"),
    }


def test_training_pipeline_schedule_params_and_docs(dagbag):
    dag = dagbag.dags["training_pipeline"]
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    # Interval semantics: the run for day D covers [D, D+1) and starts when D is over.
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression in ("@daily", "0 0 * * *")
    params = dag.params.dump()
    assert params["window_days"] is None and params["force"] is False and params["attempt"] == 1
    assert params["config"].endswith("configs/adult.yaml")
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
