"""Promote: a blue-green switch to a candidate the gate passed, through the deployment controller.

The candidate (SavedModel plus the raw training rows that become the drift reference) is copied into
an immutable, content-addressed version folder and registered in MLflow, both outside the state lock,
with the test rows and offline scores of its skew check. The controller (``controller.deliver``) puts it
into the slot that is not live, checks it against the running servers, and switches ``live`` to it with
one atomic rename. The previous live slot is left as it was, so a rollback is one more switch.
Promoting the version that is already live changes nothing, so re-running D is safe.
"""

from __future__ import annotations

import json
import logging

import pandas as pd

from pipelines.core.context import RunContext
from pipelines.core.contracts import Action, StageName
from pipelines.core.deployment_state import (
    DeployError,
    DeploymentState,
    SlotRecord,
    read_state,
    state_lock,
    state_path,
)
from pipelines.core.outputs import EvaluationOutput, GateOutput, TrainOutput, TransformOutput, require
from pipelines.deployment.controller import Canned, deliver, save_canned
from pipelines.deployment.models import collect_garbage, install
from pipelines.deployment.policy import switch_refusal
from pipelines.deployment.registry import register

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
    """Deliver the candidate of ``train_uri`` through the deployment controller; returns the state file's URI.

    Raises:
        DeployError: the decision is not PROMOTE, the switch policy refuses it (a backfill, or data older
            than the live model's; see ``policy``), or the live model has changed since the candidate
            was compared with it (runs overlapped); the state is left unchanged.
        DeliveryFailed: a check against the running servers failed (skew, shadow, canary); reverted.
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
    canned = _canned(ctx, transformed)
    if canned:
        save_canned(ctx.config, version, canned)
    why = record.decision.force_reason if record.decision.forced else "; ".join(record.decision.reasons[:3])
    state = deliver(ctx.config, installed, record.live_version, run_id=ctx.run_id, by=ctx.operator, reason=why)
    log.info("promoted %s to %s (previous live: %s)", version, state.live, before.live)
    return str(state_path(ctx.config))


def _canned(ctx: RunContext, transformed: TransformOutput) -> Canned | None:
    """The first ``deployment.skew_rows`` test rows and the candidate's offline scores for them, if evaluated."""
    scores_path = EvaluationOutput(ctx.stage_dir(StageName.EVALUATE)).scores_path
    n = ctx.config.deployment.skew_rows
    if not n or not scores_path.exists():
        return None
    features = [f.name for f in ctx.config.data_schema.model_features]
    rows = json.loads(pd.read_parquet(transformed.test_raw, columns=features).head(n).to_json(orient="records"))
    return Canned(rows, pd.read_parquet(scores_path)["candidate"].head(n).tolist())
