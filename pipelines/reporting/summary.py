"""A short, human-readable account of one run for D, read back from its artifacts.

Only a consistent set is reported as the run: a stage output whose inputs have been replaced since it
was made (a re-run of D killed half-way) is listed as out of date, never mixed with the newer outputs.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pipelines.core.artifacts import METADATA, read_json, run_dir
from pipelines.core.config import Config
from pipelines.core.contracts import NoteKind, StageName, Status
from pipelines.core.deployment_state import read_state, state_path
from pipelines.core.outputs import DriftOutput, EvaluationOutput, GateOutput, ValidationOutput, inconsistency

KEY_METRICS = ("accuracy", "f1", "roc_auc")


def collect(config: Config, ds: date) -> dict[str, Any]:
    """Each stage's metadata for D, which outputs are out of date, and the drift, evaluation and gate reports."""
    root = run_dir(config.artifact_root, ds)
    found: dict[str, Any] = {"ds": ds.isoformat(), "run_dir": str(root), "stages": {}, "stale": {}}
    for stage in StageName:
        if (root / stage / METADATA).exists():
            problem = inconsistency(root / stage)
            if problem:
                found["stale"][stage] = problem
            else:
                found["stages"][stage] = read_json(root / stage / METADATA)
    stages = found["stages"]
    if StageName.DRIFT in stages:
        found["drift"] = DriftOutput(root / StageName.DRIFT).report()
    if StageName.EVALUATE in stages:
        found["evaluation"] = EvaluationOutput(root / StageName.EVALUATE).report()
    if StageName.GATE in stages:
        found["gate"] = GateOutput(root / StageName.GATE).record()
    return found


def render(config: Config, ds: date) -> str:
    """Lines describing D's run: rows, drift, validation, metrics, decision and where to look."""
    run = collect(config, ds)
    stages = run["stages"]
    lines = [f"Run {ds} ({run['run_dir']})"]
    if StageName.INGEST in stages:
        m = stages[StageName.INGEST]
        failed = "" if m["status"] == Status.SUCCEEDED else " (FAILED)"
        days = f"{m['days_read']} of {m['window_days']} days"
        lines.append(f"  ingest     {m['rows']} rows from {days}, {m['quarantined']} quarantined{failed}")
        lines.extend(f"    blocked: {p}" for p in m["problems"])
        lines.extend(f"    warning: {w}" for w in m["warnings"])
    if "drift" in run:
        d = run["drift"]
        html = DriftOutput(run_dir(config.artifact_root, ds) / StageName.DRIFT).html_path
        lines.append(f"  drift      {d.get('summary') or d['verdict']}; report: {html}")
    if "concept_drift" in run.get("evaluation", {}):
        lines.append(f"  concept    {run['evaluation']['concept_drift']['message']}")
    if StageName.VALIDATE in stages:
        result = ValidationOutput(run_dir(config.artifact_root, ds) / StageName.VALIDATE).result()
        verdict = "passed" if result["success"] else "FAILED"
        lines.append(f"  validation {verdict}, {result['evaluated']} expectations; Data Docs: {result['data_docs']}")
        lines.extend(f"    blocked: {b}" for b in result["blocked"])
        lines.extend(f"    warning: {w}" for w in result["warnings"])
    if "evaluation" in run:
        overall = run["evaluation"]["overall"]
        for who in ("candidate", "live"):
            if who in overall:
                values = ", ".join(f"{m} {overall[who][m]:.4f}" for m in KEY_METRICS if overall[who][m] is not None)
                version = f" (live model {run['evaluation']['live_version']})" if who == "live" else ""
                lines.append(f"  {who:<10} {values}{version}")
    if StageName.TRAIN in stages:
        lines.append(f"  mlflow     run {stages[StageName.TRAIN]['mlflow_run_id']} ({config.tracking_uri})")
    if "gate" in run:
        lines.extend(_gate_lines(run["gate"].decision))
    for event in read_state(config).history:
        if event.ds == ds.isoformat():
            lines.append(f"  deployed   {event.action} to {event.target}: {event.version}")
    for stage, problem in run["stale"].items():
        lines.append(f"  OUT OF DATE {stage}: {problem}; re-run from `{stage}`")
    return "\n".join(lines)


def _gate_lines(decision: Any) -> list[str]:
    passed = sum(c.passed for c in decision.checks)
    small = sum(n.kind is NoteKind.SMALL_SLICE for n in decision.notes)
    too_small = f"; {small} slices too small to gate" if small else ""
    lines = [f"  gate       {passed} of {len(decision.checks)} checks passed{too_small}"]
    lines.extend(f"             {c.name}: {c.detail}" for c in decision.checks if c.name.startswith("non-inferior"))
    lines.append(f"  decision   {decision.action}" + (" (forced)" if decision.forced else ""))
    lines.extend(f"             - {reason}" for reason in decision.reasons)
    return lines


def live_line(config: Config) -> str:
    """One line: which slot is live and which version it holds."""
    state = read_state(config)
    if not state.live_record:
        return "Live now: nothing promoted yet"
    return f"Live now: {state.live} = {state.live_record.version} ({state_path(config)})"
