"""Nothing is specific to Adult: a different tabular dataset runs end to end from a config alone."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta

import mlflow
import numpy as np
import pandas as pd
import yaml

from pipelines.core import artifacts
from pipelines.core.config import load_config
from pipelines.core.deployment_state import read_state

CONFIG = {
    "name": "loan-default",
    "data": {
        "root": "landing",
        "partition_pattern": "day={date}/loans.csv",
        "window_days": 4,
        "test_fraction": 0.25,
    },
    "schema": {
        "label": {"name": "defaulted", "positive": "yes", "values": ["no", "yes"]},
        "features": [
            {"name": "income_k", "kind": "numeric", "min": 0, "max": 500, "slice_bins": [40, 80]},
            {"name": "debt_ratio", "kind": "numeric", "min": 0, "max": 5, "max_missing": 0.1},
            {"name": "region", "kind": "categorical", "values": ["north", "south", "east", "west"]},
            {
                "name": "employment type",  # as CSV exports name columns: no valid TensorFlow node name
                "kind": "categorical",
                "values": ["salaried", "self_employed", "unemployed"],
            },
        ],
    },
    "slices": [["region"], ["employment type", "income_k"]],
    "protected_attributes": ["region"],
    "tags": [{"name": "jobless", "rule": "`employment type` == 'unemployed'"}],
    "thresholds": {
        "ingest": {"max_quarantine_fraction": 0.02},
        "validation": {"min_rows": 1000},
        "drift": {"psi": 0.2, "bins": 10, "min_rows": 200},
        "gate": {
            "floors": {"roc_auc": 0.7},
            "primary_metric": "roc_auc",
            "max_regression": 0.02,
            "max_slice_regression": 0.1,
            "min_slice_size": 60,
            "min_test_rows": 300,
            "confidence": 0.9,
            "bootstrap_samples": 100,
            "max_retrains": 0,
        },
    },
    "training": {
        "epochs": 4,
        "batch_size": 64,
        "learning_rate": 0.01,
        "hidden_units": [16],
        "embedding_dim": 4,
        "warm_start": True,
    },
    "artifact_root": "artifacts",
    "mlflow": {"experiment": "loans"},
}


def write_loans(root, start: date, days: int, rows: int = 400) -> None:
    """A loan book: default risk rises with the debt ratio and unemployment, falls with income."""
    rng = np.random.default_rng(7)
    for i in range(days):
        n = rows
        df = pd.DataFrame(
            {
                "loan_id": np.arange(n) + i * n,
                "income_k": rng.gamma(4, 15, n).round(1),
                "debt_ratio": rng.uniform(0, 3, n).round(3),
                "region": rng.choice(["north", "south", "east", "west"], n),
                "employment type": rng.choice(["salaried", "self_employed", "unemployed"], n, p=[0.6, 0.3, 0.1]),
            }
        )
        logit = -1.5 + 1.6 * df["debt_ratio"] - 0.03 * df["income_k"] + 1.5 * (df["employment type"] == "unemployed")
        df["defaulted"] = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
        df.loc[rng.random(n) < 0.03, "debt_ratio"] = np.nan
        path = root / f"day={(start + timedelta(days=i)).isoformat()}" / "loans.csv"
        path.parent.mkdir(parents=True)
        df.to_csv(path, index=False)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], capture_output=True, text=True)


def test_a_loan_dataset_trains_gates_and_promotes_with_only_a_config(tmp_path):
    config_path = tmp_path / "loans.yaml"
    config_path.write_text(yaml.safe_dump(CONFIG))
    config = load_config(config_path)
    write_loans(config.data.root, date(2026, 3, 1), days=5)

    first = run_cli("run", "--config", str(config_path), "--date", "2026-03-04")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "decision   PROMOTE" in first.stdout
    second = run_cli("run", "--config", str(config_path), "--date", "2026-03-05")
    assert second.returncode == 0, second.stderr[-3000:]

    run1 = artifacts.run_dir(config.artifact_root, date(2026, 3, 4))
    meta = artifacts.read_metadata(run1 / "ingest")
    assert meta["rows"] == 4 * 400 and meta["partitions"][0]["unexpected_columns"] == ["loan_id"]
    evaluation = json.loads((run1 / "evaluate" / "evaluation.json").read_text())
    assert evaluation["overall"]["candidate"]["roc_auc"] > 0.7
    assert set(evaluation["slices"]) == {"region", "employment type x income_k"}
    assert "employment type=unemployed, income_k=<40" in evaluation["slices"]["employment type x income_k"]
    tagged = {t["tag"]: t["rows"] for t in evaluation["error_analysis"]["tags"]}
    cells = [n for name, n in tagged.items() if name.startswith("employment type=unemployed, ")]
    assert 0 < tagged["jobless"] == sum(cells) < evaluation["test_rows"], tagged

    run2 = artifacts.run_dir(config.artifact_root, date(2026, 3, 5))
    warm = artifacts.read_metadata(run2 / "train")["warm_start"]
    assert warm["used"] and warm["embedding_rows_carried"]["employment type"] == 4, "3 values and the OOV row"
    assert json.loads((run2 / "drift" / "drift.json").read_text())["verdict"] in ("none", "warn", "drift")
    decision = json.loads((run2 / "gate" / "decision.json").read_text())
    state = read_state(config)
    assert state.slots["blue"].ds == "2026-03-04"
    assert state.live == ("green" if decision["action"] == "PROMOTE" else "blue")


def test_the_local_runner_retrains_a_failed_candidate_then_holds(tmp_path):
    from pipelines.core.context import RunContext
    from pipelines.runner import run_pipeline

    config = {**CONFIG, "training": {**CONFIG["training"], "epochs": 1}}
    gate = {**CONFIG["thresholds"]["gate"], "floors": {"roc_auc": 0.999}, "max_retrains": 1}
    config["thresholds"] = {**CONFIG["thresholds"], "gate": gate}
    config_path = tmp_path / "loans.yaml"
    config_path.write_text(yaml.safe_dump(config))
    write_loans(load_config(config_path).data.root, date(2026, 3, 1), days=4)

    decision, uris = run_pipeline(RunContext.create(config_path, "2026-03-04"))

    assert decision.action == "HOLD" and any("no retrains left" in r for r in decision.reasons)
    assert "promote" not in uris
    train = artifacts.read_metadata(uris["train"])
    assert train["attempt"] == 2 and train["seed"] == CONFIG["training"].get("seed", 0) + 1
    assert json.loads((tmp_path / "artifacts/runs/2026-03-04/gate/decision.json").read_text())["attempt"] == 2


def test_a_config_naming_only_the_data_its_columns_and_an_artifact_root_runs_on_the_defaults(tmp_path):
    minimal = {
        "name": CONFIG["name"],
        "data": {k: CONFIG["data"][k] for k in ("root", "partition_pattern", "window_days")},
        "schema": CONFIG["schema"],
        "artifact_root": "artifacts",
    }
    config_path = tmp_path / "loans.yaml"
    config_path.write_text(yaml.safe_dump(minimal))
    config = load_config(config_path)
    write_loans(config.data.root, date(2026, 3, 1), days=4, rows=800)

    run = run_cli("run", "--config", str(config_path), "--date", "2026-03-04")

    assert run.returncode == 0, run.stderr[-3000:]
    assert "decision   PROMOTE" in run.stdout, run.stdout[-2000:]
    train = artifacts.read_metadata(artifacts.run_dir(config.artifact_root, date(2026, 3, 4)) / "train")
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'artifacts' / 'mlflow.db'}")
    experiment = mlflow.get_experiment(mlflow.get_run(train["mlflow_run_id"]).info.experiment_id)
    assert experiment.name == "loan-default"  # named as the config
    assert read_state(config).live_record.ds == "2026-03-04"
    card = (artifacts.run_dir(config.artifact_root, date(2026, 3, 4)) / "card" / "run_card.html").read_text()
    assert "No slices configured" in card and "No tags: configure" in card  # not an empty table
