"""The pipeline graph, defined once, and the local runner that walks it without a scheduler.

``STAGES`` is the one definition of the graph: each stage's name (artifact folder and CLI verb), its
function (whose name is the Airflow task id), the stages whose outputs it takes, and its kind. The
CLI runs it here; the Airflow DAG wires the same functions, and a DAG test checks that its task
dependencies match this table.

The local runner has one piece of concurrency. On two or more cores the validation stage runs in a worker
process while this process loads what the later stages import (TensorFlow, TFT, Beam, MLflow) and creates
the tracking store: the two largest imports of a run, Great Expectations' and TensorFlow's, then overlap
instead of following each other. Nothing else changes: the transform still starts only once validation has
passed, and a validation error is raised here as it would be in process.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from functools import partial

from pipelines import CHATTY_LOGGERS
from pipelines.core.context import RunContext
from pipelines.core.contracts import Action, Decision, GateRecord, PipelineError, StageKind, StageName
from pipelines.core.deployment_state import live_version
from pipelines.core.outputs import GateOutput
from pipelines.core.tracking import ensure_store
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

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


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
# The stage the local runner runs in a worker process while it loads the training stack (see the docstring).
OVERLAPPED = StageName.VALIDATE
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


def configure_logging(level: int) -> None:
    """The CLI's log format at ``level`` (the validation worker's too); chatty libraries only at DEBUG."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else logging.WARNING)


def run_stage(ctx: RunContext, stage: Stage, uris: dict[StageName, str] | None = None) -> str:
    """Run one stage; an input not in ``uris`` is D's conventional output folder of that stage."""
    log.info("== %s (%s, attempt %d)", stage.name, ctx.ds, ctx.attempt)
    return stage.run(ctx, *_inputs(ctx, stage, uris or {}))


def _inputs(ctx: RunContext, stage: Stage, uris: dict[StageName, str]) -> list[str]:
    return [uris.get(name) or str(ctx.stage_dir(name)) for name in stage.inputs]


def run_stage_beside(ctx: RunContext, stage: Stage, uris: dict[StageName, str], meanwhile: Callable[[], None]) -> str:
    """Run ``stage`` in a fresh worker process while this process calls ``meanwhile``; returns the stage's URI.

    The stage's own error is raised here. The worker is spawned, not forked, so it shares no threads or
    open handles with this process, and it logs in the same format at the same level.
    """
    log.info("== %s (%s, attempt %d, in a worker process)", stage.name, ctx.ds, ctx.attempt)
    spawn = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()
    worker = ProcessPoolExecutor(1, mp_context=spawn, initializer=configure_logging, initargs=(level,))
    try:
        result = worker.submit(_run_in_worker, stage.name, ctx, *_inputs(ctx, stage, uris))
        meanwhile()
        return result.result()
    except BrokenProcessPool as exc:
        raise PipelineError(f"the {stage.name} worker process died before it finished ({exc})") from exc
    finally:
        worker.shutdown()  # the worker has exited, and handed its memory back, before the next stage starts


def _run_in_worker(name: StageName, ctx: RunContext, *inputs: str) -> str:
    try:
        return BY_NAME[name].run(ctx, *inputs)
    finally:
        gc.freeze()  # the worker exits next: spare it the last collections (see pipelines/__main__.py)


def load_training_stack(ctx: RunContext) -> None:
    """Import what transform, training and evaluation use, and create the tracking store; then keep the
    collector off those modules' objects, which live as long as the process (a full collection walks
    every one of them, and there are close to a million)."""
    import apache_beam  # noqa: F401
    import mlflow  # noqa: F401
    import tensorflow  # noqa: F401
    import tensorflow_transform  # noqa: F401

    ensure_store(ctx.config)
    gc.collect()
    gc.freeze()


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
            if stage.name is OVERLAPPED and (os.cpu_count() or 1) > 1:
                uris[stage.name] = run_stage_beside(ctx, stage, uris, partial(load_training_stack, ctx))
            else:
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
