"""The library stays in its rooms: layers import one way, no stage imports another, no Airflow in pipelines/."""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from pipelines.runner import STAGES

LIBRARY = sorted((REPO / "pipelines").rglob("*.py"))
# Lower numbers are lower layers; a module may import only from its own package or a lower layer.
LAYERS = {
    "core": 0,
    "data": 1,
    "features": 1,
    "model": 2,
    "evaluation": 3,
    "decision": 3,
    "deployment": 4,
    "reporting": 5,
    "serving": 5,
    "monitoring": 5,
    "runners": 6,
}
RUNNERS = {"runner", "cli", "__main__", "lifecycle"}  # top-level modules: the local runner, the CLI, the lifecycle demo
STAGE_MODULES = {stage.run.__module__ for stage in STAGES}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> tuple[int, str]:
    """(layer, package) of a pipelines module; the package root (its environment settings) is core."""
    parts = module.split(".")
    if len(parts) == 1:
        return 0, "core"
    if parts[1] in RUNNERS:
        return LAYERS["runners"], "runners"
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module}: pipelines/{parts[1]} belongs to no layer; add it to LAYERS")
    return LAYERS[parts[1]], parts[1]


def imports(path: Path) -> list[tuple[str, bool]]:
    """Each pipelines module imported by ``path``, and whether the import is at the module's top level."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found.extend((n, id(node) in top) for n in names if n.split(".")[0] == "pipelines")
    return found


def violations(root: Path, stage_modules: set[str]) -> list[str]:
    """Every import in the package at ``root`` that breaks the layer rules, as readable lines."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        importer = module_name(path, root)
        layer, package = layer_of(importer)
        for imported, at_top in imports(path):
            if imported == "pipelines" or imported == importer:
                continue
            their_layer, their_package = layer_of(imported)
            if not at_top:
                problems.append(f"{importer} imports {imported} inside a function (imports go at the top)")
            if their_layer > layer or (their_layer == layer and their_package != package):
                problems.append(f"{importer} (layer {package}) imports {imported} (layer {their_package})")
            if imported in stage_modules and importer in stage_modules:
                problems.append(f"the stage {importer} imports the stage {imported}")
            elif imported in stage_modules and layer < LAYERS["runners"]:
                problems.append(f"{importer} imports the stage {imported}: read its output through core.outputs")
    return problems


def test_layers_import_one_way_and_no_stage_imports_another():
    assert violations(REPO / "pipelines", STAGE_MODULES) == []


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        (
            "data/drift.py",
            "from pipelines.deployment.promote import promote_blue_green",
            "pipelines.data.drift (layer data) imports pipelines.deployment.promote (layer deployment)",
        ),
        (
            "model/train.py",
            "from pipelines.features.transform import MISSING_TOKEN",
            "the stage pipelines.model.train imports the stage pipelines.features.transform",
        ),
        (
            "data/validate.py",
            "from pipelines.features.encoding import column_kinds",
            "pipelines.data.validate (layer data) imports pipelines.features.encoding (layer features)",
        ),
        (
            "evaluation/metrics.py",
            "def f():\n    from pipelines.core import outputs",
            "pipelines.evaluation.metrics imports pipelines.core inside a function",
        ),
    ],
)
def test_the_boundary_check_catches_a_forbidden_import(tmp_path, module, line, expected):
    copy = tmp_path / "pipelines"
    shutil.copytree(REPO / "pipelines", copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / module).open("a") as fh:
        fh.write(f"\n{line}\n")

    assert any(expected in problem for problem in violations(copy, STAGE_MODULES)), violations(copy, STAGE_MODULES)


def test_pipelines_never_imports_airflow():
    offenders = []
    for path in LIBRARY:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders.extend(f"{path.name}: {n}" for n in names if n.split(".")[0] == "airflow")
    assert len(LIBRARY) > 10 and offenders == []


def test_importing_the_runner_and_cli_loads_no_heavy_framework():
    modules = "pipelines.cli, pipelines.runner, pipelines.reporting.summary"
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
