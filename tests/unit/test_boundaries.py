"""The library stays in its room: no Airflow in pipelines/, nothing heavy loaded just by importing it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from conftest import REPO

LIBRARY = sorted((REPO / "pipelines").rglob("*.py"))


def imported_modules(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_pipelines_never_imports_airflow():
    offenders = {p.name: m for p in LIBRARY for m in imported_modules(p) if m.split(".")[0] == "airflow"}
    assert len(LIBRARY) > 10 and offenders == {}


def test_importing_the_runner_and_cli_loads_no_heavy_framework():
    modules = "pipelines.cli, pipelines.runner, pipelines.summary"
    probe = f"import sys, json, {modules}; print(json.dumps([*sys.modules]))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = {m.split(".")[0] for m in json.loads(result.stdout)}
    assert not loaded & {"airflow", "tensorflow", "apache_beam", "great_expectations", "mlflow"}


def test_library_environment_is_set_once_and_respects_the_caller():
    probe = "import os, pipelines; print(os.environ['TF_USE_LEGACY_KERAS'], os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    env = {"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "0"}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.split() == ["1", "0"]
    setters = [p.name for p in LIBRARY if "TF_USE_LEGACY_KERAS" in p.read_text()]
    assert setters == ["__init__.py"]
