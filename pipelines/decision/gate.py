"""Gate: a pure decision over metrics, PROMOTE / HOLD / RETRAIN / INSUFFICIENT_EVIDENCE, with the reason
for each check.

The candidate must clear the configured floors and beat a trivial baseline at the lower confidence
bound; when a model is live it must be non-inferior to it on the primary metric (the lower bound of
the paired candidate-minus-live difference above ``-max_regression``), and no slice with enough rows
may show a significant regression beyond ``max_slice_regression`` (paired bootstrap per slice,
corrected for testing many slices; ``slice_rule`` can demand non-inferiority instead); fairness
checks compare groups of each protected attribute at their confidence bound. A candidate that fails
on its own (floors, baseline) is retrained while attempts remain; one that is merely not better than
live, or unfair, is held. Too few test rows is INSUFFICIENT_EVIDENCE (held, and said so). Which
check families only warn is policy (``gate.warn_only``). An operator's ``force`` promotes anyway,
and says so.
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
from pipelines.core.stats import adjust_p_values
from pipelines.core.tracking import client

log = logging.getLogger(__name__)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _named(metric: str, evaluation: dict[str, Any]) -> str:
    """The metric as the report measured it: a multi-class report's averages are macro (ROC AUC one-vs-rest)."""
    return f"{metric} (macro)" if evaluation.get("task") == "multiclass" and metric != "accuracy" else metric


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
        detail = f"{_named(metric, evaluation)} {_fmt(value)}, floor {floor}"
        checks.append(Check(f"floor {metric}", passed, detail, CheckKind.QUALITY, "floors"))
    low = ((candidate.get("ci") or {}).get("accuracy") or [None])[0]
    baseline = evaluation["baseline"]["accuracy"]
    checks.append(
        Check(
            "beats baseline",
            low is not None and baseline is not None and low > baseline,
            f"accuracy lower bound {_fmt(low)}, majority-class baseline {_fmt(baseline)}",
            CheckKind.QUALITY,
            "baseline",
        )
    )
    return checks


def comparison_checks(evaluation: dict[str, Any], policy: GatePolicy) -> tuple[list[Check], list[Note]]:
    """Against the live model: non-inferior overall on the paired interval, and each large-enough slice."""
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
            "non_inferiority",
        )
    ]
    slices, notes = slice_checks(evaluation, policy)
    return checks + slices, notes


def slice_checks(evaluation: dict[str, Any], policy: GatePolicy) -> tuple[list[Check], list[Note]]:
    """Each sufficient slice against live on its paired bootstrap, corrected for testing many slices.

    ``below_margin`` is the share of resamples where the candidate trails live by more than
    ``max_slice_regression``. Under ``no_significant_regression`` a slice fails when that regression
    is significant (its p-value ``1 - below_margin``, adjusted, is at most alpha); under
    ``non_inferiority`` it fails unless non-inferiority is shown (``below_margin``, adjusted, at most
    alpha). Alpha is one-sided, ``(1 - confidence) / 2``, as the overall check's lower bound is.
    """
    metric, alpha = policy.primary_metric, (1 - policy.confidence) / 2
    tested, notes = [], []
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
            diff = result["difference"][metric]
            if diff["point"] is None or diff.get("below_margin") is None:
                notes.append(
                    Note(NoteKind.UNDEFINED_METRIC, f"{metric} undefined on slice {group} (one class only): not gated")
                )
                continue
            below = diff["below_margin"]
            p = 1.0 - below if policy.slice_rule == "no_significant_regression" else below
            tested.append((slice_name, group, diff, p))
    adjusted = adjust_p_values([t[3] for t in tested], policy.slice_correction)
    checks = []
    for (slice_name, group, diff, _), p in zip(tested, adjusted, strict=True):
        significant = p <= alpha
        passed = not significant if policy.slice_rule == "no_significant_regression" else significant
        low, high = diff["ci"] or [None, None]
        claim = (
            f"regression beyond -{policy.max_slice_regression} {'significant' if significant else 'not significant'}"
            if policy.slice_rule == "no_significant_regression"
            else f"non-inferiority at -{policy.max_slice_regression} {'shown' if significant else 'not shown'}"
        )
        checks.append(
            Check(
                f"slice {group}",
                passed,
                f"{slice_name}: candidate - live {metric} {_fmt(diff['point'])} [{_fmt(low)}, {_fmt(high)}]; "
                f"{claim} (adjusted p {p:.3g}, {policy.slice_correction} over {len(tested)} slices, alpha {alpha:.3g})",
                CheckKind.COMPARISON,
                "slices",
            )
        )
    return checks, notes


def fairness_gate(evaluation: dict[str, Any]) -> tuple[list[Check], list[Note]]:
    """The evaluation's fairness checks (limits at their confidence bound, ``thresholds.fairness``) as gate
    checks; a ``warn`` one that fails is a warning note. One that could not be judged (fewer than two
    groups of the protected attribute with enough rows) is missing evidence: INSUFFICIENT_EVIDENCE."""
    checks, notes = [], []
    for c in (evaluation.get("fairness") or {}).get("checks", []):
        name = f"fairness {c['attribute']} {c['name']}"
        if c["severity"] == "warn":
            if not c["success"]:
                notes.append(Note(NoteKind.WARNING, f"{name} failed (warn only): {c['detail']}"))
        elif not c["sufficient"]:
            checks.append(Check(name, False, f"not judged: {c['detail']}", CheckKind.EVIDENCE, "fairness"))
        else:
            checks.append(Check(name, c["success"], c["detail"], CheckKind.FAIRNESS, "fairness"))
    return checks, notes


def verdict(checks: list[Check], policy: GatePolicy, attempt: int, first_model: bool) -> tuple[Action, list[str]]:
    """The action implied by the failed blocking checks: evidence first (insufficient evidence), then
    quality (retrain while attempts remain), then comparison and fairness (hold)."""
    blocking = [c for c in checks if not c.passed and c.family not in policy.warn_only]
    failed = {kind: [c for c in blocking if c.kind is kind] for kind in CheckKind}
    if failed[CheckKind.EVIDENCE]:
        return Action.INSUFFICIENT_EVIDENCE, [f"insufficient evidence: {c.detail}" for c in failed[CheckKind.EVIDENCE]]
    if failed[CheckKind.QUALITY]:
        retry = attempt <= policy.max_retrains
        reasons = [f"{c.name} failed: {c.detail}" for c in failed[CheckKind.QUALITY]]
        reasons.append(
            f"attempt {attempt} of {policy.max_retrains + 1}: " + ("retraining" if retry else "no retrains left")
        )
        return (Action.RETRAIN if retry else Action.HOLD), reasons
    held = failed[CheckKind.COMPARISON] + failed[CheckKind.FAIRNESS]
    if held:
        return Action.HOLD, [f"{c.name} failed: {c.detail}" for c in held]
    return Action.PROMOTE, ["all checks passed" + (" (first model: no live model)" if first_model else "")]


def warnings(checks: list[Check], policy: GatePolicy) -> list[Note]:
    """Failed checks of the families ``gate.warn_only`` names: recorded, not acted on."""
    return [
        Note(NoteKind.WARNING, f"{c.name} failed (warn only): {c.detail}")
        for c in checks
        if not c.passed and c.family in policy.warn_only
    ]


def decide(
    evaluation: dict[str, Any],
    policy: GatePolicy,
    attempt: int = 1,
    force: bool = False,
    drift: dict[str, Any] | None = None,
    forced_by: str | None = None,
    force_reason: str | None = None,
) -> Decision:
    """Decide what to do with a candidate from its evaluation report (see module docstring)."""
    compared, notes = comparison_checks(evaluation, policy)
    fair, fairness_notes = fairness_gate(evaluation)
    notes.extend(fairness_notes)
    checks = [*evidence_checks(evaluation, policy), *quality_checks(evaluation, policy), *compared, *fair]
    if drift and (drift.get("drifted_features") or drift.get("verdict") in (DriftVerdict.WARN, DriftVerdict.DRIFT)):
        found = drift.get("summary") or f"{drift['verdict']}: {drift['drifted_features']}"
        detail = f"data drift against the live model's training data, {found} ('drift': retrain on the recent window)"
        notes.append(Note(NoteKind.DRIFT, detail))
    concept = evaluation.get("concept_drift") or {}
    if concept.get("verdict") == ConceptVerdict.DRIFT:
        notes.append(Note(NoteKind.CONCEPT_DRIFT, concept["message"]))
    notes.extend(warnings(checks, policy))
    action, reasons = verdict(checks, policy, attempt, first_model="live" not in evaluation["overall"])
    if force and action is not Action.PROMOTE:
        who, why = forced_by or "an operator", force_reason or "no reason given"
        return Decision(
            Action.PROMOTE,
            [f"forced by {who} ({why}); the gate said {action}:", *reasons],
            checks,
            notes,
            True,
            forced_by,
            force_reason,
        )
    return Decision(action, reasons, checks, notes)


def gate_candidate(ctx: RunContext, evaluation_uri: str, drift_uri: str) -> str:
    """Decide on the evaluated candidate and write the gate record; returns the gate output's URI."""
    evaluation, drift = require(EvaluationOutput(evaluation_uri)), require(DriftOutput(drift_uri))
    report = evaluation.report()
    decision = decide(
        report,
        ctx.config.thresholds.gate,
        attempt=ctx.attempt,
        force=ctx.force,
        drift=drift.report(),
        forced_by=ctx.operator,
        force_reason=ctx.force_reason,
    )
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
