"""Promote: a blue-green switch to a candidate the gate passed, recorded in the deployment state.

The candidate (SavedModel plus the raw training rows that become the drift reference) is copied into
an immutable, content-addressed version folder and registered in MLflow, both outside the state lock;
then, under the lock, the version is put into the slot that is not live and ``live`` switches to it
with one atomic rename. The previous live slot is left as it was, so a rollback is one more switch.
Promoting the version that is already live changes nothing, so re-running D is safe.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pipelines.core.context import RunContext
from pipelines.core.contracts import Action
from pipelines.core.deployment_state import (
    DeployError,
    DeploymentState,
    Event,
    EventKind,
    Slot,
    SlotRecord,
    read_state,
    state_lock,
    state_path,
    write_state,
)
from pipelines.core.outputs import GateOutput, TrainOutput, TransformOutput, require
from pipelines.deployment.models import collect_garbage, install
from pipelines.deployment.policy import switch_refusal
from pipelines.deployment.registry import aliases, register, sync_aliases

log = logging.getLogger(__name__)


def check_promotable(state: DeploymentState, version: str, compared_with: str | None) -> bool:
    """True if ``version`` should be switched to, False if it is already live.

    Raises:
        DeployError: the live model has changed since the candidate was gated against it.
    """
    live = state.live_record
    if live and live.version == version:
        return False
    current = live.version if live else None
    if compared_with != current:
        raise DeployError(
            f"the live model changed from {compared_with} to {current} since this candidate was gated: "
            f"re-run the date to gate it against the model that is live now"
        )
    return True


def promote_blue_green(ctx: RunContext, train_uri: str, transform_uri: str, decision_uri: str) -> str:
    """Blue-green switch to the candidate of ``train_uri``; returns the state file's URI.

    Raises:
        DeployError: the decision is not PROMOTE, the switch policy refuses it (a backfill, or data older
            than the live model's; see ``policy``), or the live model has changed since the candidate
            was compared with it (runs overlapped); the state is left unchanged.
    """
    record = require(GateOutput(decision_uri)).record()
    if record.decision.action is not Action.PROMOTE:
        raise DeployError(f"decision is {record.decision.action}, not PROMOTE: {record.decision.reasons}")
    trained, transformed = require(TrainOutput(train_uri)), require(TransformOutput(transform_uri))
    meta = trained.metadata()
    version = f"{ctx.ds.isoformat()}-{meta['fingerprint'][:12]}"
    before = read_state(ctx.config)
    if not check_promotable(before, version, record.live_version):
        log.info("version %s is already live: nothing to switch", version)
        with state_lock(ctx.config):
            collect_garbage(ctx.config, read_state(ctx.config))  # copies left by a promotion killed earlier
        return str(state_path(ctx.config))
    refusal = switch_refusal(ctx, before.live_record, forced=record.decision.forced)
    if refusal:
        raise DeployError(refusal)
    candidate = SlotRecord(
        version=version,
        model_uri=str(trained.model_dir),
        reference_uri=str(transformed.train_raw),
        ds=ctx.ds.isoformat(),
        run_id=ctx.run_id,
        mlflow_run_id=meta["mlflow_run_id"],
        registry_version=register(ctx.config, meta["mlflow_run_id"], version),
        decision=record.decision.to_dict(),
    )
    installed = install(ctx.config, candidate, trained.model_dir, transformed.train_raw)
    with state_lock(ctx.config):
        state = read_state(ctx.config)
        if not check_promotable(state, version, record.live_version):  # a run that overlapped got there first
            collect_garbage(ctx.config, state)
            return str(state_path(ctx.config))
        installed = install(ctx.config, candidate, trained.model_dir, transformed.train_raw)  # if collected since
        target = state.live.other if state.live else Slot.BLUE
        event = Event(EventKind.PROMOTE, state.live, target, version, ctx.ds.isoformat(), ctx.run_id, _now())
        new = state.with_event(event, installed)
        write_state(ctx.config, new)
        collect_garbage(ctx.config, new)
    sync_aliases(ctx.config, aliases(read_state(ctx.config)))
    log.info("promoted %s to %s (previous live: %s)", version, target, state.live)
    return str(state_path(ctx.config))


def _now() -> str:
    return datetime.now(UTC).isoformat()
