"""Gate: a pure decision over metrics, PROMOTE / HOLD / RETRAIN, with the reason for each check.

The candidate must clear the configured floors and beat a trivial baseline at the lower confidence
bound; when a model is live it must be non-inferior to it on the primary metric (the lower bound of
the paired candidate-minus-live difference above ``-max_regression``) and must not regress on any
slice with enough rows. A candidate that fails on its own (floors, baseline) is retrained while
attempts remain; one that is merely not better than live is held. Too few test rows is
"insufficient evidence" and holds. An operator's ``force`` promotes anyway, and says so.
"""

from __future__ import annotations

import logging
from typing import Any

from pipelines.core.artifacts import fingerprint_json, write_json_atomic
from pipelines.core.config import GatePolicy
from pipelines.core.context import RunContext
from pipelines.core.contracts import (
    Action,
    Check,
    CheckKind,
    ConceptVerdict,
    Decision,
    DriftVerdict,
    GateRecord,
    Note,
    NoteKind,
    StageName,
)
from pipelines.core.outputs import DriftOutput, EvaluationOutput, GateOutput, TrainOutput, require
from pipelines.core.tracking import client

log = logging.getLogger(__name__)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def evidence_checks(evaluation: dict[str, Any], policy: GatePolicy) -> list[Check]:
    """Is there enough test data to judge at all?"""
    n = evaluation["test_rows"]
    return [
        Check(
            "min_test_rows",
            n >= policy.min_test_rows,
            f"{n} test rows, need >= {policy.min_test_rows}",
            CheckKind.EVIDENCE,
        )
    ]


def quality_checks(evaluation: dict[str, Any], policy: GatePolicy) -> list[Check]:
    """The candidate on its own: the configured floors, and beating the trivial baseline at the lower bound."""
    candidate = evaluation["overall"]["candidate"]
    checks = []
    for metric, floor in policy.floors.items():
        value = candidate.get(metric)
        passed = value is not None and value >= floor
        checks.append(Check(f"floor {metric}", passed, f"{metric} {_fmt(value)}, floor {floor}", CheckKind.QUALITY))
    low = ((candidate.get("ci") or {}).get("accuracy") or [None])[0]
    baseline = evaluation["baseline"]["accuracy"]
    checks.append(
        Check(
            "beats baseline",
            low is not None and baseline is not None and low > baseline,
            f"accuracy lower bound {_fmt(low)}, majority-class baseline {_fmt(baseline)}",
            CheckKind.QUALITY,
        )
    )
    return checks


def comparison_checks(evaluation: dict[str, Any], policy: GatePolicy) -> tuple[list[Check], list[Note]]:
    """Against the live model: non-inferior overall on the paired interval, no regression on a large-enough slice."""
    overall = evaluation["overall"]
    if "live" not in overall or not overall.get("difference"):
        return [], [Note(NoteKind.NO_LIVE_MODEL, "no live model: nothing to compare against")]
    metric = policy.primary_metric
    diff = overall["difference"][metric]
    low, high = diff["ci"] or [None, None]
    checks = [
        Check(
            f"non-inferior {metric}",
            low is not None and low >= -policy.max_regression,
            f"candidate - live {_fmt(diff['point'])}, {policy.confidence:.0%} CI [{_fmt(low)}, {_fmt(high)}], "
            f"margin -{policy.max_regression}",
            CheckKind.COMPARISON,
        )
    ]
    notes = []
    for slice_name, groups in evaluation["slices"].items():
        for group, result in groups.items():
            if not result["sufficient"]:
                size = result["candidate"]["n"]
                notes.append(
                    Note(
                        NoteKind.SMALL_SLICE,
                        f"insufficient evidence on slice {group} ({size} rows < {policy.min_slice_size}): not gated",
                    )
                )
                continue
            point = result["difference"][metric]["point"]
            if point is None:
                notes.append(
                    Note(NoteKind.UNDEFINED_METRIC, f"{metric} undefined on slice {group} (one class only): not gated")
                )
                continue
            checks.append(
                Check(
                    f"slice {group}",
                    point >= -policy.max_slice_regression,
                    f"{slice_name}: candidate - live {metric} {_fmt(point)}, tolerance -{policy.max_slice_regression}",
                    CheckKind.COMPARISON,
                )
            )
    return checks, notes


def verdict(checks: list[Check], policy: GatePolicy, attempt: int, first_model: bool) -> tuple[Action, list[str]]:
    """The action implied by the failed checks: evidence first, then quality (retrain), then comparison (hold)."""
    failed = {kind: [c for c in checks if not c.passed and c.kind is kind] for kind in CheckKind}
    if failed[CheckKind.EVIDENCE]:
        return Action.HOLD, [f"insufficient evidence: {c.detail}" for c in failed[CheckKind.EVIDENCE]]
    if failed[CheckKind.QUALITY]:
        retry = attempt <= policy.max_retrains
        reasons = [f"{c.name} failed: {c.detail}" for c in failed[CheckKind.QUALITY]]
        reasons.append(
            f"attempt {attempt} of {policy.max_retrains + 1}: " + ("retraining" if retry else "no retrains left")
        )
        return (Action.RETRAIN if retry else Action.HOLD), reasons
    if failed[CheckKind.COMPARISON]:
        return Action.HOLD, [f"{c.name} failed: {c.detail}" for c in failed[CheckKind.COMPARISON]]
    return Action.PROMOTE, ["all checks passed" + (" (first model: no live model)" if first_model else "")]


def decide(
    evaluation: dict[str, Any],
    policy: GatePolicy,
    attempt: int = 1,
    force: bool = False,
    drift: dict[str, Any] | None = None,
) -> Decision:
    """Decide what to do with a candidate from its evaluation report (see module docstring)."""
    compared, notes = comparison_checks(evaluation, policy)
    checks = [*evidence_checks(evaluation, policy), *quality_checks(evaluation, policy), *compared]
    if drift and (drift.get("drifted_features") or drift.get("verdict") in (DriftVerdict.WARN, DriftVerdict.DRIFT)):
        found = drift.get("summary") or f"{drift['verdict']}: {drift['drifted_features']}"
        detail = f"data drift against the live model's training data, {found} ('drift': retrain on the recent window)"
        notes.append(Note(NoteKind.DRIFT, detail))
    concept = evaluation.get("concept_drift") or {}
    if concept.get("verdict") == ConceptVerdict.DRIFT:
        notes.append(Note(NoteKind.CONCEPT_DRIFT, concept["message"]))
    action, reasons = verdict(checks, policy, attempt, first_model="live" not in evaluation["overall"])
    if force and action is not Action.PROMOTE:
        return Decision(Action.PROMOTE, [f"forced by operator; the gate said {action}:", *reasons], checks, notes, True)
    return Decision(action, reasons, checks, notes)


def gate_candidate(ctx: RunContext, evaluation_uri: str, drift_uri: str) -> str:
    """Decide on the evaluated candidate and write the gate record; returns the gate output's URI."""
    evaluation, drift = require(EvaluationOutput(evaluation_uri)), require(DriftOutput(drift_uri))
    report = evaluation.report()
    decision = decide(report, ctx.config.thresholds.gate, attempt=ctx.attempt, force=ctx.force, drift=drift.report())
    # The live version the candidate was compared with: promotion refuses if it has changed since.
    record = GateRecord(decision, ctx.attempt, report["live_version"])
    with ctx.open_stage(StageName.GATE) as out:
        write_json_atomic(GateOutput(out.path).decision_path, record.to_dict())
        out.finish(
            fingerprint_json(record.to_dict()),
            inputs={"evaluation": evaluation, "drift": drift},
            action=decision.action,
        )
    trained = TrainOutput(evaluation.metadata()["inputs"]["model"]["uri"])
    mlflow_client, mlflow_run = client(ctx.config), trained.metadata()["mlflow_run_id"]
    mlflow_client.set_tag(mlflow_run, "decision", decision.action)
    mlflow_client.set_tag(mlflow_run, "decision_forced", str(decision.forced))
    log.info("gate: %s %s", decision.action, decision.reasons)
    return out.uri
