"""A short, human-readable account of one run for D, read back from its artifacts."""

from __future__ import annotations

from datetime import date
from typing import Any

from pipelines import deploy, drift, evaluate, gate, ingest, train, validate
from pipelines.artifacts import METADATA, read_json, run_dir
from pipelines.config import Config

KEY_METRICS = ("accuracy", "f1", "roc_auc")


def collect(config: Config, ds: date) -> dict[str, Any]:
    """The metadata of each stage that ran for D, plus the drift, evaluation and decision reports."""
    root = run_dir(config.artifact_root, ds)
    found: dict[str, Any] = {"ds": ds.isoformat(), "run_dir": str(root), "stages": {}}
    for meta_path in sorted(root.glob(f"*/{METADATA}")):
        found["stages"][meta_path.parent.name] = read_json(meta_path)
    readers = {
        drift.STAGE: drift.read_report,
        evaluate.STAGE: evaluate.read_report,
        gate.STAGE: gate.read_decision,
    }
    for stage, reader in readers.items():
        if stage in found["stages"]:
            found[stage] = reader(root / stage)
    return found


def render(config: Config, ds: date) -> str:
    """Lines describing D's run: rows, drift, validation, metrics, decision and where to look."""
    run = collect(config, ds)
    stages = run["stages"]
    lines = [f"Run {ds} ({run['run_dir']})"]
    if ingest.STAGE in stages:
        m = stages[ingest.STAGE]
        lines.append(f"  ingest     {m['rows']} rows from {m['window_days']} days, {m['quarantined']} quarantined")
    if drift.STAGE in run:
        d = run[drift.STAGE]
        lines.append(f"  drift      {d['verdict']}" + (f" in {d['drifted_features']}" if d["drifted_features"] else ""))
    if validate.STAGE in stages:
        ok = stages[validate.STAGE]["success"]
        docs = validate.read_result(run_dir(config.artifact_root, ds) / validate.STAGE)["data_docs"]
        lines.append(f"  validation {'passed' if ok else 'FAILED'}; Data Docs: {docs}")
    if evaluate.STAGE in run:
        overall = run[evaluate.STAGE]["overall"]
        for who in ("candidate", "live"):
            if who in overall:
                values = ", ".join(f"{m} {overall[who][m]:.4f}" for m in KEY_METRICS if overall[who][m] is not None)
                version = f" (live model {run[evaluate.STAGE]['live_version']})" if who == "live" else ""
                lines.append(f"  {who:<10} {values}{version}")
    if train.STAGE in stages:
        lines.append(f"  mlflow     run {stages[train.STAGE]['mlflow_run_id']} ({config.tracking_uri})")
    if gate.STAGE in run:
        decision = run[gate.STAGE]
        passed = sum(c.passed for c in decision.checks)
        small = sum("insufficient evidence on slice" in n for n in decision.notes)
        too_small = f"; {small} slices too small to gate" if small else ""
        lines.append(f"  gate       {passed} of {len(decision.checks)} checks passed{too_small}")
        lines.extend(f"             {c.name}: {c.detail}" for c in decision.checks if c.name.startswith("non-inferior"))
        lines.append(f"  decision   {decision.action}" + (" (forced)" if decision.forced else ""))
        lines.extend(f"             - {reason}" for reason in decision.reasons)
    for event in deploy.read_state(config)["history"]:
        if event["version"].startswith(ds.isoformat()):
            lines.append(f"  deployed   {event['action']} to {event['to']}: {event['version']}")
    return "\n".join(lines)


def live_line(config: Config) -> str:
    state = deploy.read_state(config)
    if not state["live"]:
        return "Live now: nothing promoted yet"
    return f"Live now: {state['live']} = {state['slots'][state['live']]['version']} ({deploy.state_path(config)})"
