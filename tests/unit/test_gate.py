"""The gate's pure decision: PROMOTE / HOLD / RETRAIN from an evaluation report and the policy."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import ADULT_CONFIG

from pipelines.core.config import load_config
from pipelines.core.contracts import Action, Check, CheckKind, Decision, GateRecord, Note, NoteKind
from pipelines.decision.gate import decide

PROMOTE, HOLD, RETRAIN, INSUFFICIENT = Action.PROMOTE, Action.HOLD, Action.RETRAIN, Action.INSUFFICIENT_EVIDENCE

# floors accuracy 0.78 / roc_auc 0.85, primary roc_auc, max_regression 0.01, max_slice_regression 0.05,
# min_slice_size 100, min_test_rows 400, max_retrains 1.
POLICY = load_config(ADULT_CONFIG).thresholds.gate


def group(n: int = 500, diff: float = 0.0, below: float | None = None) -> dict[str, Any]:
    """One slice group as `assess` reports it: sufficient ones carry a paired difference.

    ``below`` is the share of resamples trailing live by more than max_slice_regression (0.05); by
    default near 1 for a difference well past it, near 0 well inside it.
    """
    if n < POLICY.min_slice_size:
        return {"sufficient": False, "candidate": {"n": n}}
    if below is None:
        below = 0.999 if diff < -0.07 else (0.0 if diff > -0.03 else 0.5)
    return {
        "sufficient": True,
        "candidate": {"n": n},
        "difference": {"roc_auc": {"point": diff, "ci": [diff - 0.03, diff + 0.03], "below_margin": below}},
    }


def evaluation(
    *,
    rows: int = 2000,
    accuracy: float = 0.85,
    roc_auc: float = 0.90,
    accuracy_low: float = 0.83,
    baseline: float = 0.76,
    diff_ci: tuple[float, float] | None = None,
    slices: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An `evaluate_frame`-shaped report; ``diff_ci`` (candidate - live on roc_auc) means a live model."""
    overall: dict[str, Any] = {
        "sufficient": True,
        "candidate": {
            "accuracy": accuracy,
            "roc_auc": roc_auc,
            "n": rows,
            "ci": {"accuracy": [accuracy_low, accuracy + 0.02], "roc_auc": [roc_auc - 0.02, roc_auc + 0.02]},
        },
    }
    if diff_ci is not None:
        overall["live"] = {"accuracy": 0.84, "roc_auc": 0.89, "n": rows}
        overall["difference"] = {
            "accuracy": {"point": 0.0, "ci": [-0.01, 0.01]},
            "roc_auc": {"point": sum(diff_ci) / 2, "ci": list(diff_ci)},
        }
    return {
        "test_rows": rows,
        "baseline": {"accuracy": baseline, "roc_auc": 0.5},
        "overall": overall,
        "slices": slices or {},
    }


CASES = [
    pytest.param(evaluation(), {}, PROMOTE, "first model", id="first-model-passes"),
    pytest.param(evaluation(roc_auc=0.80), {}, RETRAIN, "floor roc_auc failed", id="below-floor-attempt-1"),
    pytest.param(evaluation(roc_auc=0.80), {"attempt": 2}, HOLD, "no retrains left", id="below-floor-attempt-2"),
    pytest.param(
        evaluation(accuracy=0.79, accuracy_low=0.75),
        {},
        RETRAIN,
        "beats baseline failed",
        id="not-above-baseline",
    ),
    pytest.param(evaluation(diff_ci=(-0.005, 0.03)), {}, PROMOTE, "all checks passed", id="non-inferior"),
    pytest.param(evaluation(diff_ci=(-0.03, 0.01)), {}, HOLD, "non-inferior roc_auc failed", id="inferior-to-live"),
    pytest.param(
        evaluation(diff_ci=(0.0, 0.02), slices={"sex": {"sex=Female": group(300, -0.08), "sex=Male": group()}}),
        {},
        HOLD,
        "slice sex=Female failed",
        id="sufficient-slice-regresses",
    ),
    pytest.param(
        evaluation(diff_ci=(0.0, 0.02), slices={"sex": {"sex=Female": group(300, -0.04)}}),
        {},
        PROMOTE,
        "all checks passed",
        id="slice-within-tolerance",
    ),
    pytest.param(
        evaluation(diff_ci=(0.0, 0.02), slices={"race": {"race=Other": group(30)}}),
        {},
        PROMOTE,
        "all checks passed",
        id="insufficient-slice-not-gated",
    ),
    pytest.param(evaluation(rows=150), {}, INSUFFICIENT, "insufficient evidence: 150 test rows", id="too-few-rows"),
    pytest.param(
        evaluation(rows=150, roc_auc=0.6), {}, INSUFFICIENT, "insufficient evidence", id="evidence-before-quality"
    ),
    pytest.param(
        evaluation(diff_ci=(0.0, 0.02), slices={"sex": {"sex=Female": group(300, -0.06, below=0.7)}}),
        {},
        PROMOTE,
        "all checks passed",
        id="slice-regression-not-significant",
    ),
    pytest.param(
        evaluation(
            diff_ci=(0.0, 0.02),
            slices={"race": {f"race={k}": group(300, -0.08, below=0.985) for k in "ABCDEFGHIJ"}},
        ),
        {},
        PROMOTE,
        "all checks passed",
        id="ten-borderline-slices-survive-the-correction",
    ),
    pytest.param(
        evaluation(diff_ci=(0.0, 0.02), slices={"race": {"race=A": group(300, -0.08, below=0.985)}}),
        {},
        HOLD,
        "slice race=A failed",
        id="one-borderline-slice-alone-is-significant",
    ),
    pytest.param(
        evaluation(diff_ci=(-0.005, 0.005)),
        {},
        PROMOTE,
        "all checks passed",
        id="tie-with-live-is-non-inferior",
    ),
    pytest.param(
        evaluation(roc_auc=0.6, diff_ci=(-0.2, -0.1)),
        {},
        RETRAIN,
        "floor roc_auc",
        id="quality-before-comparison",
    ),
]


@pytest.mark.parametrize(("report", "options", "action", "reason"), CASES)
def test_decide(report, options, action, reason):
    decision = decide(report, POLICY, **options)

    assert decision.action == action
    assert any(reason in r for r in decision.reasons), decision.reasons
    assert decision.forced is False


def test_every_check_is_recorded_with_its_kind():
    slices = {"sex": {"sex=Female": group(300, -0.01)}}

    decision = decide(evaluation(diff_ci=(0.0, 0.02), slices=slices), POLICY)

    assert [(c.name, c.kind, c.family, c.passed) for c in decision.checks] == [
        ("min_test_rows", "evidence", "", True),
        ("floor accuracy", "quality", "floors", True),
        ("floor roc_auc", "quality", "floors", True),
        ("beats baseline", "quality", "baseline", True),
        ("non-inferior roc_auc", "comparison", "non_inferiority", True),
        ("slice sex=Female", "comparison", "slices", True),
    ]
    assert "holm over 1 slices" in decision.checks[-1].detail


def test_the_non_inferiority_slice_rule_holds_a_slice_without_evidence():
    policy = POLICY.model_copy(update={"slice_rule": "non_inferiority"})
    uncertain = {"sex": {"sex=Female": group(150, -0.02, below=0.2)}}
    shown = {"sex": {"sex=Female": group(3000, 0.01, below=0.001)}}

    assert decide(evaluation(diff_ci=(0.0, 0.02), slices=uncertain), policy).action == HOLD
    assert decide(evaluation(diff_ci=(0.0, 0.02), slices=uncertain), POLICY).action == PROMOTE
    decision = decide(evaluation(diff_ci=(0.0, 0.02), slices=shown), policy)
    assert decision.action == PROMOTE and "non-inferiority at -0.05 shown" in decision.checks[-1].detail


@pytest.mark.parametrize(
    ("warn_only", "report", "action"),
    [
        (["slices"], evaluation(diff_ci=(0.0, 0.02), slices={"sex": {"sex=Female": group(300, -0.2)}}), PROMOTE),
        ([], evaluation(diff_ci=(0.0, 0.02), slices={"sex": {"sex=Female": group(300, -0.2)}}), HOLD),
        (["floors"], evaluation(roc_auc=0.80), PROMOTE),
        (["non_inferiority"], evaluation(diff_ci=(-0.03, 0.01)), PROMOTE),
    ],
)
def test_warn_only_families_are_recorded_as_warnings_and_do_not_block(warn_only, report, action):
    decision = decide(report, POLICY.model_copy(update={"warn_only": warn_only}))

    assert decision.action == action
    warned = [n for n in decision.notes if n.kind is NoteKind.WARNING]
    assert bool(warned) is bool(warn_only) and all("(warn only)" in n.detail for n in warned)


def test_no_live_model_is_a_note():
    decision = decide(evaluation(), POLICY)

    assert decision.notes == [Note(NoteKind.NO_LIVE_MODEL, "no live model: nothing to compare against")]
    assert not any(c.kind is CheckKind.COMPARISON for c in decision.checks)


def test_insufficient_slice_is_only_a_note():
    slices = {"race": {"race=Other": group(30)}}

    decision = decide(evaluation(diff_ci=(0.0, 0.02), slices=slices), POLICY)

    assert decision.action == PROMOTE
    assert not any(c.name.startswith("slice") for c in decision.checks)
    [note] = decision.notes
    assert note.kind is NoteKind.SMALL_SLICE
    assert "race=Other" in note.detail and "30 rows" in note.detail


def test_slice_with_an_undefined_metric_is_a_note_not_a_passed_check():
    single_class = group(400)
    single_class["difference"]["roc_auc"] = {"point": None, "ci": None}
    slices = {"race": {"race=Other": single_class}}

    decision = decide(evaluation(diff_ci=(0.0, 0.02), slices=slices), POLICY)

    assert decision.action == PROMOTE
    assert not any(c.name == "slice race=Other" for c in decision.checks)
    assert decision.notes == [
        Note(NoteKind.UNDEFINED_METRIC, "roc_auc undefined on slice race=Other (one class only): not gated")
    ]


def test_missing_metric_fails_its_floor():
    report = evaluation()
    del report["overall"]["candidate"]["roc_auc"]

    decision = decide(report, POLICY)

    assert decision.action == RETRAIN
    assert any("roc_auc n/a" in r for r in decision.reasons)


def test_force_turns_hold_into_a_forced_promote_and_keeps_the_reasons():
    report = evaluation(diff_ci=(-0.03, 0.01))
    held = decide(report, POLICY)

    forced = decide(report, POLICY, force=True)

    assert held.action == HOLD
    assert forced.action == PROMOTE
    assert forced.forced is True
    assert "HOLD" in forced.reasons[0] and "forced" in forced.reasons[0]
    assert forced.reasons[1:] == held.reasons
    assert forced.checks == held.checks


def test_force_on_a_retrain_also_promotes():
    decision = decide(evaluation(roc_auc=0.8), POLICY, force=True)

    assert (decision.action, decision.forced) == (PROMOTE, True)
    assert "RETRAIN" in decision.reasons[0]


def test_force_on_a_passing_candidate_is_not_marked_forced():
    decision = decide(evaluation(), POLICY, force=True)

    assert (decision.action, decision.forced) == (PROMOTE, False)


@pytest.mark.parametrize(
    ("drift", "noted"),
    [
        ({"verdict": "drift", "drifted_features": ["age"]}, True),
        ({"verdict": "warn", "drifted_features": ["age", "sex"], "summary": "warn: 2 of 13 features drifted"}, True),
        ({"verdict": "none", "drifted_features": []}, False),
        ({"verdict": "no_reference", "drifted_features": []}, False),
        (None, False),
    ],
)
def test_drift_adds_a_note_but_does_not_change_the_action(drift, noted):
    decision = decide(evaluation(diff_ci=(0.0, 0.02)), POLICY, drift=drift)

    drift_notes = [n for n in decision.notes if n.kind is NoteKind.DRIFT]
    assert decision.action == PROMOTE
    assert bool(drift_notes) is noted
    if noted:
        assert (drift.get("summary") or "['age']") in drift_notes[0].detail
        assert "retrain on the recent window" in drift_notes[0].detail


def test_decision_round_trips_through_a_dict_and_json():
    decision = Decision(
        HOLD,
        ["non-inferior roc_auc failed: ..."],
        [
            Check("min_test_rows", True, "2000 test rows", CheckKind.EVIDENCE),
            Check("floor f1", False, "f1 0.1", CheckKind.QUALITY),
        ],
        [Note(NoteKind.DRIFT, "a note")],
        forced=False,
    )

    data = decision.to_dict()

    assert data["checks"][1] == {
        "name": "floor f1",
        "passed": False,
        "detail": "f1 0.1",
        "kind": "quality",
        "family": "",
    }
    assert Decision.from_dict(data) == decision
    assert Decision.from_dict(json.loads(json.dumps(data))) == decision


def test_decide_output_round_trips():
    decision = decide(
        evaluation(diff_ci=(-0.03, 0.01)),
        POLICY,
        force=True,
        drift={"verdict": "drift", "drifted_features": ["age"]},
    )

    assert Decision.from_dict(json.loads(json.dumps(decision.to_dict()))) == decision


def test_gate_record_round_trips_and_keeps_the_live_version_it_was_compared_with():
    record = GateRecord(decide(evaluation(diff_ci=(0.0, 0.02)), POLICY), attempt=2, live_version="2026-01-03-abc")

    data = json.loads(json.dumps(record.to_dict()))

    assert data["action"] == "PROMOTE" and data["attempt"] == 2 and data["live_version"] == "2026-01-03-abc"
    assert GateRecord.from_dict(data) == record
    assert GateRecord.from_dict(data).decision.action is Action.PROMOTE


def test_a_forced_promotion_records_who_and_why():
    decision = decide(evaluation(diff_ci=(-0.03, 0.01)), POLICY, force=True, forced_by="ada", force_reason="INC-42")

    assert decision.reasons[0] == "forced by ada (INC-42); the gate said HOLD:"
    assert (decision.forced_by, decision.force_reason) == ("ada", "INC-42")
    assert Decision.from_dict(json.loads(json.dumps(decision.to_dict()))) == decision


def fairness_check(success: bool, severity: str = "block", sufficient: bool = True) -> dict[str, Any]:
    return {
        "name": "equalized_odds_difference",
        "attribute": "sex",
        "success": success,
        "sufficient": sufficient,
        "severity": severity,
        "detail": "sex: equalized odds difference 0.52 [0.47, 0.58], upper bound 0.58 > limit 0.40",
    }


@pytest.mark.parametrize(
    ("check", "action", "note"),
    [
        (fairness_check(False), HOLD, None),
        (fairness_check(True), PROMOTE, None),
        (fairness_check(False, "warn"), PROMOTE, NoteKind.WARNING),
        (fairness_check(False, sufficient=False), INSUFFICIENT, None),
    ],
    ids=["breach-holds", "within-limit", "warn-severity-notes", "not-judged-is-insufficient-evidence"],
)
def test_fairness_checks_hold_a_breach_even_with_good_accuracy(check, action, note):
    report = evaluation(accuracy=0.9, roc_auc=0.95, diff_ci=(0.01, 0.03))
    report["fairness"] = {"checks": [check]}

    decision = decide(report, POLICY)

    assert decision.action == action
    fairness = [(c.name, c.kind, c.passed) for c in decision.checks if c.family == "fairness"]
    kind = CheckKind.EVIDENCE if not check["sufficient"] else CheckKind.FAIRNESS
    assert fairness == ([("fairness sex equalized_odds_difference", kind, check["success"])] if note is None else [])
    if action is HOLD:
        assert decision.reasons == [f"fairness sex equalized_odds_difference failed: {check['detail']}"]
    if action is INSUFFICIENT:
        assert decision.reasons == [f"insufficient evidence: not judged: {check['detail']}"]
    assert [n.kind for n in decision.notes] == ([note] if note else [])


def test_a_candidate_with_a_large_fpr_gap_is_held_on_a_real_audit():
    import numpy as np
    import pandas as pd

    from pipelines.evaluation.fairness import audit, fairness_checks

    config = load_config(ADULT_CONFIG)
    rng = np.random.default_rng(0)
    n = 4000
    sex = np.where(rng.random(n) < 0.5, "Female", "Male")
    y = (rng.random(n) < 0.3).astype(int)
    # Good at ranking overall, but Female negatives get a false positive 60% of the time, Male ones 5%.
    false_positive = (y == 0) & (rng.random(n) < np.where(sex == "Female", 0.6, 0.05))
    p = np.where((y == 1) | false_positive, 0.8, 0.2) + rng.normal(0, 0.01, n)
    race = np.where(rng.random(n) < 0.8, "White", "Black")
    frame = pd.DataFrame({"sex": sex, "race": race, "age": rng.integers(20, 70, n).astype(float)})

    report = audit(frame, y, p, config)
    report["checks"] = fairness_checks(report, config)
    decision = decide({**evaluation(accuracy=0.85, roc_auc=0.9), "fairness": report}, POLICY)

    assert decision.action == HOLD
    assert any(
        r.startswith("fairness sex equalized_odds_difference failed: sex: equalized odds difference 0.5")
        for r in decision.reasons
    ), decision.reasons
