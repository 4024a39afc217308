"""Deployment state: two slots (blue, green), which one is live, and what each holds.

Promotion copies the candidate (SavedModel plus the raw training rows used as the drift reference)
into an immutable, content-addressed version folder, puts it in the slot that is not live, and then
switches ``live`` in ``state.json`` with one atomic rename. The previous live slot is left as it was,
so a rollback is one more switch. Serving (a later stage) reads this state; so do the drift check
(the live model's training data is the reference) and the evaluation (the live model is the one to beat).
"""

from __future__ import annotations

import copy
import fcntl
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.artifacts import atomic_dir, read_json, read_metadata, write_json_atomic
from pipelines.config import Config
from pipelines.context import PipelineError, RunContext
from pipelines.tracking import register, sync_aliases
from pipelines.train import MODEL_DIR

log = logging.getLogger(__name__)

SLOTS = ("blue", "green")
STATE_FILE = "state.json"
REFERENCE = "reference.parquet"


class DeployError(PipelineError):
    """A promotion or rollback that cannot be done; the state is left unchanged."""


def deployment_dir(config: Config) -> Path:
    return config.artifact_root / "deployment"


def state_path(config: Config) -> Path:
    return deployment_dir(config) / STATE_FILE


def read_state(config: Config) -> dict[str, Any]:
    path = state_path(config)
    if not path.exists():
        return {"live": None, "slots": dict.fromkeys(SLOTS), "history": []}
    return read_json(path)


@contextmanager
def state_lock(config: Config) -> Iterator[None]:
    """Serialize read-modify-write of the state across processes (runs of a backfill may overlap)."""
    path = deployment_dir(config) / ".state.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def live_version(config: Config) -> dict[str, Any] | None:
    """The record of the version in the live slot, or None before the first promotion."""
    state = read_state(config)
    return state["slots"][state["live"]] if state["live"] else None


def _other(slot: str) -> str:
    return SLOTS[1 - SLOTS.index(slot)]


def promote(ctx: RunContext, train_uri: str, transform_uri: str, decision_uri: str) -> str:
    """Blue-green switch to the candidate of ``train_uri``; returns the state file's URI.

    The version is also registered in the MLflow model registry, whose ``blue``, ``green`` and
    ``live`` aliases are then set to mirror the state (``state.json`` is the source of truth).
    Re-promoting the version that is already live changes nothing, so re-running D is safe.

    Raises:
        DeployError: the decision at ``decision_uri`` is not PROMOTE, or the live model has changed
            since the candidate was compared with it (runs overlapped); the state is left unchanged.
    """
    from pipelines.gate import DECISION, read_decision
    from pipelines.transform import TRAIN_RAW

    decision = read_decision(decision_uri)
    if decision.action != "PROMOTE":
        raise DeployError(f"decision is {decision.action}, not PROMOTE: {decision.reasons}")
    train_meta = read_metadata(train_uri)
    version = f"{ctx.ds.isoformat()}-{train_meta['fingerprint'][:12]}"
    folder = deployment_dir(ctx.config) / "models" / version
    with state_lock(ctx.config):
        state = read_state(ctx.config)
        live = state["live"]
        if live and state["slots"][live]["version"] == version:
            log.info("version %s is already live in %s; nothing to switch", version, live)
            sync_aliases(ctx.config, state)
            return str(state_path(ctx.config))
        compared = read_json(Path(decision_uri) / DECISION).get("live_version")
        current = state["slots"][live]["version"] if live else None
        if compared != current:
            raise DeployError(
                f"the live model changed from {compared} to {current} since this candidate was gated: "
                f"re-run {ctx.ds} to gate it against the model that is live now"
            )
        if not folder.exists():
            with atomic_dir(folder) as tmp:
                shutil.copytree(Path(train_uri) / MODEL_DIR, tmp / MODEL_DIR)
                shutil.copy2(Path(transform_uri) / TRAIN_RAW, tmp / REFERENCE)
                ctx.write_metadata(tmp, "promote", train_meta["fingerprint"], inputs={"model": train_uri})
        target = _other(live) if live else SLOTS[0]
        new = copy.deepcopy(state)
        new["slots"][target] = {
            "version": version,
            "model_uri": str(folder / MODEL_DIR),
            "reference_uri": str(folder / REFERENCE),
            "ds": ctx.ds.isoformat(),
            "run_id": ctx.run_id,
            "mlflow_run_id": train_meta["mlflow_run_id"],
            "registry_version": register(ctx.config, train_meta["mlflow_run_id"], version),
            "decision": decision.to_dict(),
        }
        new["live"] = target
        new["history"].append(_event("promote", live, target, version, ctx.run_id))
        write_json_atomic(state_path(ctx.config), new)
        sync_aliases(ctx.config, new)
    log.info("promoted %s to %s (previous live: %s)", version, target, live)
    return str(state_path(ctx.config))


def rollback(config: Config, run_id: str = "manual") -> dict[str, Any]:
    """Switch live back to the other slot; returns the new state.

    Raises:
        DeployError: there is no live model, or the other slot is empty.
    """
    with state_lock(config):
        state = read_state(config)
        live = state["live"]
        if not live:
            raise DeployError("nothing is live yet: no rollback possible")
        target = _other(live)
        if not state["slots"][target]:
            raise DeployError(f"slot {target} is empty: nothing to roll back to")
        new = copy.deepcopy(state)
        new["live"] = target
        new["history"].append(_event("rollback", live, target, state["slots"][target]["version"], run_id))
        write_json_atomic(state_path(config), new)
        sync_aliases(config, new)
    return new


def _event(action: str, source: str | None, target: str, version: str, run_id: str) -> dict[str, Any]:
    return {
        "action": action,
        "from": source,
        "to": target,
        "version": version,
        "run_id": run_id,
        "at": datetime.now(UTC).isoformat(),
    }
