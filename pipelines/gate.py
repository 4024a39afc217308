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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines.artifacts import atomic_dir, fingerprint_json, read_json, read_metadata, write_json_atomic
from pipelines.config import GatePolicy
from pipelines.context import RunContext

log = logging.getLogger(__name__)

STAGE = "gate"
DECISION = "decision.json"
PROMOTE, HOLD, RETRAIN = "PROMOTE", "HOLD", "RETRAIN"
RUN_FIELDS = ("attempt", "live_version")  # recorded next to the decision in decision.json


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    kind: str  # "evidence", "quality" (the candidate alone) or "comparison" (against live)


@dataclass(frozen=True)
class Decision:
    action: str
    reasons: list[str]
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    forced: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Decision:
        return cls(**{**data, "checks": [Check(**c) for c in data.get("checks", [])]})


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def decide(
    evaluation: dict[str, Any],
    policy: GatePolicy,
    attempt: int = 1,
    force: bool = False,
    drift: dict[str, Any] | None = None,
) -> Decision:
    """Decide what to do with a candidate from its evaluation report (see module docstring)."""
    checks: list[Check] = []
    notes: list[str] = []
    overall = evaluation["overall"]
    candidate = overall["candidate"]
    n = evaluation["test_rows"]
    checks.append(
        Check(
            "min_test_rows",
            n >= policy.min_test_rows,
            f"{n} test rows, need >= {policy.min_test_rows}",
            "evidence",
        )
    )
    for metric, floor in policy.floors.items():
        value = candidate.get(metric)
        checks.append(
            Check(
                f"floor {metric}",
                value is not None and value >= floor,
                f"{metric} {_fmt(value)}, floor {floor}",
                "quality",
            )
        )
    low = (candidate.get("ci") or {}).get("accuracy") or [None]
    baseline = evaluation["baseline"]["accuracy"]
    checks.append(
        Check(
            "beats baseline",
            low[0] is not None and baseline is not None and low[0] > baseline,
            f"accuracy lower bound {_fmt(low[0])}, majority-class baseline {_fmt(baseline)}",
            "quality",
        )
    )
    if "live" in overall and overall.get("difference"):
        metric = policy.primary_metric
        diff = overall["difference"][metric]
        ci = diff["ci"] or [None, None]
        checks.append(
            Check(
                f"non-inferior {metric}",
                ci[0] is not None and ci[0] >= -policy.max_regression,
                f"candidate - live {_fmt(diff['point'])}, {policy.confidence:.0%} CI "
                f"[{_fmt(ci[0])}, {_fmt(ci[1])}], margin -{policy.max_regression}",
                "comparison",
            )
        )
        for slice_name, groups in evaluation["slices"].items():
            for group, result in groups.items():
                if not result["sufficient"]:
                    notes.append(
                        f"insufficient evidence on slice {group} ({result['candidate']['n']} rows "
                        f"< {policy.min_slice_size}): not gated"
                    )
                    continue
                point = result["difference"][metric]["point"]
                if point is None:
                    notes.append(f"{metric} undefined on slice {group} (one class only): not gated")
                    continue
                checks.append(
                    Check(
                        f"slice {group}",
                        point >= -policy.max_slice_regression,
                        f"{slice_name}: candidate - live {metric} {_fmt(point)}, "
                        f"tolerance -{policy.max_slice_regression}",
                        "comparison",
                    )
                )
    else:
        notes.append("no live model: nothing to compare against")
    if drift and drift.get("verdict") == "drift":
        notes.append(f"data drift against the live model's training data: {drift['drifted_features']}")

    failed = {
        kind: [c for c in checks if not c.passed and c.kind == kind] for kind in ("evidence", "quality", "comparison")
    }
    if failed["evidence"]:
        action, reasons = HOLD, [f"insufficient evidence: {c.detail}" for c in failed["evidence"]]
    elif failed["quality"]:
        retry = attempt <= policy.max_retrains
        action = RETRAIN if retry else HOLD
        reasons = [f"{c.name} failed: {c.detail}" for c in failed["quality"]]
        reasons.append(
            f"attempt {attempt} of {policy.max_retrains + 1}: " + ("retraining" if retry else "no retrains left")
        )
    elif failed["comparison"]:
        action, reasons = HOLD, [f"{c.name} failed: {c.detail}" for c in failed["comparison"]]
    else:
        action = PROMOTE
        reasons = ["all checks passed" + ("" if "live" in overall else " (first model: no live model)")]
    if force and action != PROMOTE:
        return Decision(PROMOTE, [f"forced by operator; the gate said {action}:", *reasons], checks, notes, True)
    return Decision(action, reasons, checks, notes)


def gate(ctx: RunContext, evaluation_uri: str, drift_uri: str) -> str:
    """Decide on the evaluated candidate and write ``decision.json``; returns its directory URI."""
    import mlflow

    from pipelines.drift import read_report as read_drift
    from pipelines.evaluate import read_report
    from pipelines.tracking import start_run

    evaluation = read_report(evaluation_uri)
    decision = decide(
        evaluation,
        ctx.config.thresholds.gate,
        attempt=ctx.attempt,
        force=ctx.force,
        drift=read_drift(drift_uri),
    )
    # The live version the candidate was compared with: promotion refuses if it has changed since.
    record = {**decision.to_dict(), "attempt": ctx.attempt, "live_version": evaluation["live_version"]}
    final = ctx.stage_dir(STAGE)
    with atomic_dir(final) as out:
        write_json_atomic(out / DECISION, record)
        ctx.write_metadata(
            out,
            STAGE,
            fingerprint_json(record),
            inputs={"evaluation": evaluation_uri, "drift": drift_uri},
            action=decision.action,
        )
    train_uri = read_metadata(evaluation_uri)["inputs"]["model"]["uri"]
    with start_run(ctx, read_metadata(train_uri)["mlflow_run_id"]):
        mlflow.set_tags({"decision": decision.action, "decision_forced": str(decision.forced)})
    log.info("gate: %s %s", decision.action, decision.reasons)
    return str(final)


def read_decision(uri: str | Path) -> Decision:
    data = read_json(Path(uri) / DECISION)
    return Decision.from_dict({k: v for k, v in data.items() if k not in RUN_FIELDS})
