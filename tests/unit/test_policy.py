"""The switch policy: a backfill does not replace the live model, nor does a candidate on older data, unless asked."""

from __future__ import annotations

import pytest
from conftest import candidate

from pipelines.core.context import RunContext
from pipelines.core.contracts import Action, Decision, GateRecord
from pipelines.core.deployment_state import DeployError, SlotRecord, read_state, state_path
from pipelines.deployment.policy import switch_refusal
from pipelines.deployment.promote import promote_blue_green
from pipelines.runner import ROUTES, route

LIVE = SlotRecord(version="2026-01-20-abc", model_uri="m", reference_uri="r", ds="2026-01-20", run_id="r")


def ctx_for(small_adult, ds: str, **options) -> RunContext:
    return RunContext.create(small_adult, ds, **options)


@pytest.mark.parametrize(
    ("ds", "options", "forced", "refused"),
    [
        ("2026-01-21", {}, False, None),
        ("2026-01-20", {}, False, None),  # a re-run of the live model's own date
        ("2026-01-15", {}, False, "older than the live model's (2026-01-20)"),
        ("2026-01-15", {"force": True}, False, None),
        ("2026-01-15", {}, True, None),  # the gate's decision was itself an operator override
        ("2026-01-21", {"backfill": True}, False, "backfill run for 2026-01-21"),
        ("2026-01-21", {"backfill": True, "promote_in_backfill": True}, False, None),
        ("2026-01-15", {"backfill": True, "promote_in_backfill": True}, False, "older than the live model's"),
    ],
    ids=["newer", "same-date", "older", "older-forced", "older-gate-forced", "backfill", "backfill-allowed",
         "backfill-allowed-older"],
)  # fmt: skip
def test_switch_refusal(small_adult, ds, options, forced, refused):
    reason = switch_refusal(ctx_for(small_adult, ds, **options), LIVE, forced=forced)
    assert reason is None if refused is None else refused in reason


def test_nothing_live_means_no_data_age_rule_but_a_backfill_still_asks(small_adult):
    assert switch_refusal(ctx_for(small_adult, "2014-06-30"), None) is None
    assert "promote_in_backfill" in switch_refusal(ctx_for(small_adult, "2014-06-30", backfill=True), None)


def test_route_turns_a_refused_promote_into_a_hold_and_leaves_other_actions(small_adult):
    passed = GateRecord(Decision(Action.PROMOTE, ["all checks passed"]), 1, None)
    retrain = GateRecord(Decision(Action.RETRAIN, ["floor failed"]), 1, None)

    assert route(ctx_for(small_adult, "2026-01-03"), passed) == (Action.PROMOTE, None)
    action, reason = route(ctx_for(small_adult, "2026-01-03", backfill=True), passed)
    assert ROUTES[action] == "hold_candidate" and "backfill run" in reason
    assert route(ctx_for(small_adult, "2026-01-03", backfill=True), retrain) == (Action.RETRAIN, None)


def test_a_backfill_or_an_older_candidate_never_replaces_the_newer_live_model(small_adult):
    newer = ctx_for(small_adult, "2026-01-05")
    promote_blue_green(newer, *candidate(newer, "new"))
    before = state_path(newer.config).read_bytes()

    older = ctx_for(small_adult, "2026-01-03")
    with pytest.raises(DeployError, match=r"older than the live model's \(2026-01-05\)"):
        promote_blue_green(older, *candidate(older, "old"))
    backfill = ctx_for(small_adult, "2026-01-06", backfill=True)
    with pytest.raises(DeployError, match="backfill run"):
        promote_blue_green(backfill, *candidate(backfill, "backfilled"))
    assert state_path(newer.config).read_bytes() == before

    forced = ctx_for(small_adult, "2026-01-03", force=True)
    promote_blue_green(forced, *candidate(forced, "old-forced"))
    assert read_state(newer.config).live_record.ds == "2026-01-03"
