"""The pipeline graph, defined once, and the local runner that walks it without a scheduler.

``STAGES`` is the one definition of the graph: each stage's name (artifact folder and CLI verb), its
function (whose name is the Airflow task id), the stages whose outputs it takes, and its kind. The
CLI runs it here; the Airflow DAG wires the same functions, and a DAG test checks that its task
dependencies match this table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from pipelines.core.context import RunContext
from pipelines.core.contracts import Action, Decision, GateRecord, StageKind, StageName
from pipelines.core.deployment_state import live_version
from pipelines.core.outputs import GateOutput
from pipelines.data.drift import check_drift
from pipelines.data.ingest import ingest_window
from pipelines.data.validate import validate_snapshot
from pipelines.decision.gate import gate_candidate
from pipelines.deployment.policy import switch_refusal
from pipelines.deployment.promote import promote_blue_green
from pipelines.evaluation.evaluate import evaluate_model
from pipelines.features.transform import transform_features
from pipelines.model.train import train_model
from pipelines.reporting.card import write_card

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One step of the graph: its name, its function, the stages whose output URIs it takes, its kind."""

    name: StageName
    run: Callable[..., str]
    inputs: tuple[StageName, ...] = ()
    kind: StageKind = StageKind.STEP

    @property
    def task_id(self) -> str:
        """The Airflow task id: the function's name (verb_noun)."""
        return self.run.__name__


STAGES = (
    Stage(StageName.INGEST, ingest_window),
    Stage(StageName.DRIFT, check_drift, (StageName.INGEST,)),
    Stage(StageName.VALIDATE, validate_snapshot, (StageName.INGEST,)),
    Stage(StageName.TRANSFORM, transform_features, (StageName.INGEST, StageName.VALIDATE)),
    Stage(StageName.TRAIN, train_model, (StageName.TRANSFORM,)),
    Stage(StageName.EVALUATE, evaluate_model, (StageName.TRANSFORM, StageName.TRAIN)),
    Stage(StageName.GATE, gate_candidate, (StageName.EVALUATE, StageName.DRIFT), StageKind.DECISION),
    Stage(
        StageName.PROMOTE,
        promote_blue_green,
        (StageName.TRAIN, StageName.TRANSFORM, StageName.GATE),
        StageKind.DELIVERY,
    ),
)
BY_NAME = {s.name: s for s in STAGES}
DECISION_STAGE = next(s for s in STAGES if s.kind is StageKind.DECISION)
DELIVERY_STAGE = next(s for s in STAGES if s.kind is StageKind.DELIVERY)
# A retrain changes only the seed, so it starts again from training.
RETRAIN_FROM = StageName.TRAIN
# Where the DAG's branch goes for each action (hold and retrain are orchestration, not stages).
ROUTES = {
    Action.PROMOTE: DELIVERY_STAGE.task_id,
    Action.HOLD: "hold_candidate",
    Action.INSUFFICIENT_EVIDENCE: "hold_candidate",
    Action.RETRAIN: "trigger_retrain",
}


def route(ctx: RunContext, record: GateRecord) -> tuple[Action, str | None]:
    """What the run does after the gate: its action, unless the switch policy turns a PROMOTE into a
    HOLD (returned with the reason)."""
    action = record.decision.action
    if action is Action.PROMOTE:
        refusal = switch_refusal(ctx, live_version(ctx.config), forced=record.decision.forced)
        if refusal:
            return Action.HOLD, refusal
    return action, None


def run_stage(ctx: RunContext, stage: Stage, uris: dict[StageName, str] | None = None) -> str:
    """Run one stage; an input not in ``uris`` is D's conventional output folder of that stage."""
    uris = uris or {}
    args = [uris.get(name) or str(ctx.stage_dir(name)) for name in stage.inputs]
    log.info("== %s (%s, attempt %d)", stage.name, ctx.ds, ctx.attempt)
    return stage.run(ctx, *args)


def run_pipeline(ctx: RunContext) -> tuple[Decision, dict[StageName, str]]:
    """Every stage in order for D, retraining while the gate says RETRAIN, delivering on PROMOTE; then D's
    run card, which is written also when a stage raised (and then never replaces that stage's error)."""
    try:
        result = _run_stages(ctx)
    except Exception:
        try:
            log.info("run card (the run stopped): %s", write_card(ctx.config, ctx.ds))
        except Exception:
            log.exception("could not write the run card of %s; the run's own error follows", ctx.ds)
        raise
    log.info("run card: %s", write_card(ctx.config, ctx.ds))
    return result


def _run_stages(ctx: RunContext) -> tuple[Decision, dict[StageName, str]]:
    steps = [s for s in STAGES if s.kind is not StageKind.DELIVERY]
    uris: dict[StageName, str] = {}
    start = 0
    while True:
        for stage in steps[start:]:
            uris[stage.name] = run_stage(ctx, stage, uris)
        record = GateOutput(uris[DECISION_STAGE.name]).record()
        if record.decision.action is not Action.RETRAIN:
            break
        log.warning("gate says RETRAIN: %s", record.decision.reasons)
        ctx = replace(ctx, attempt=ctx.attempt + 1)
        start = steps.index(BY_NAME[RETRAIN_FROM])
    action, refusal = route(ctx, record)
    if refusal:
        log.warning("the gate passed the candidate, but it is held: %s", refusal)
    if action is Action.PROMOTE:
        uris[DELIVERY_STAGE.name] = run_stage(ctx, DELIVERY_STAGE, uris)
    return record.decision, uris
