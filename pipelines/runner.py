"""The local runner: the same stage functions the Airflow DAG wires, chained without a scheduler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from pipelines import deploy, drift, evaluate, gate, ingest, train, transform, validate
from pipelines.context import RunContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One step: its artifact folder name, its function and the stages whose URIs it takes."""

    name: str
    run: Callable[..., str]
    inputs: tuple[str, ...] = ()


STAGES = (
    Stage(ingest.STAGE, ingest.ingest),
    Stage(drift.STAGE, drift.check_drift, (ingest.STAGE,)),
    Stage(validate.STAGE, validate.validate, (ingest.STAGE,)),
    Stage(transform.STAGE, transform.transform, (ingest.STAGE,)),
    Stage(train.STAGE, train.train, (transform.STAGE,)),
    Stage(evaluate.STAGE, evaluate.evaluate, (transform.STAGE, train.STAGE)),
    Stage(gate.STAGE, gate.gate, (evaluate.STAGE, drift.STAGE)),
    Stage("promote", deploy.promote, (train.STAGE, transform.STAGE, gate.STAGE)),
)
BY_NAME = {s.name: s for s in STAGES}
# A retrain changes only the seed, so it starts again from training.
RETRAIN_FROM = train.STAGE


def run_stage(ctx: RunContext, stage: Stage, uris: dict[str, str] | None = None) -> str:
    """Run one stage; inputs not in ``uris`` are D's conventional artifact folders, which must exist."""
    uris = uris or {}
    args = []
    for name in stage.inputs:
        uri = uris.get(name) or str(ctx.stage_dir(name))
        if name not in uris and not ctx.stage_dir(name).exists():
            raise FileNotFoundError(f"{stage.name} needs the {name} output for {ctx.ds}: run that stage first")
        args.append(uri)
    log.info("== %s (%s, attempt %d)", stage.name, ctx.ds, ctx.attempt)
    return stage.run(ctx, *args)


def run_pipeline(ctx: RunContext) -> tuple[gate.Decision, dict[str, str]]:
    """Every stage in order for D, retraining while the gate says RETRAIN; returns the decision."""
    uris: dict[str, str] = {}
    start = 0
    while True:
        for stage in STAGES[start:-1]:
            uris[stage.name] = run_stage(ctx, stage, uris)
        decision = gate.read_decision(uris[gate.STAGE])
        if decision.action != gate.RETRAIN:
            break
        log.warning("gate says RETRAIN: %s", decision.reasons)
        ctx = replace(ctx, attempt=ctx.attempt + 1)
        start = STAGES.index(BY_NAME[RETRAIN_FROM])
    if decision.action == gate.PROMOTE:
        uris["promote"] = run_stage(ctx, STAGES[-1], uris)
    return decision, uris
