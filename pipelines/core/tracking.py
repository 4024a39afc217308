"""MLflow tracking: one MLflow run per training attempt, which later stages log into by its id.

The default backend is SQLite with a file artifact store, both under the artifact root; pointing
``mlflow.tracking_uri`` in the config at a tracking server is the only change a team needs.

Two things make it safe to run many processes at once on one machine:

* A new SQLite store is created once, under a lock, in a temporary file that is renamed into place
  when its schema is complete. (Two processes that migrate a fresh database at the same time race in
  MLflow's migrations and can leave it half-migrated for good.)
* Every run records which process opened it. A run still RUNNING whose process has died (killed
  mid-training) is marked FAILED, with the reason, by the next training on this machine.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from pipelines.core.artifacts import code_version, file_lock
from pipelines.core.config import Config
from pipelines.core.context import RunContext

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"  # the artifact path of the SavedModel in a training run
PROCESS_TAG = "process"  # "<host>:<pid>:<process start time>" of the process that opened the run
_SQLITE = "sqlite:///"


def ensure_store(config: Config) -> None:
    """Create the local SQLite tracking store if it does not exist yet, atomically and only once."""
    uri = config.tracking_uri
    if not uri.startswith(_SQLITE) or Path(uri[len(_SQLITE) :]).exists():
        return
    path = Path(uri[len(_SQLITE) :])
    with file_lock(path.with_name(f".{path.name}.lock")):
        if path.exists():
            return
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        tmp = path.with_name(f".{path.name}.tmp")
        for debris in (tmp, tmp.with_name(f"{tmp.name}-journal")):  # from an init killed mid-way
            debris.unlink(missing_ok=True)
        uri = f"{_SQLITE}{tmp}"
        store = SqlAlchemyStore(uri, (config.artifact_root / "mlruns").as_uri())  # creates every table
        store.engine.dispose()
        getattr(SqlAlchemyStore, "_engine_map", {}).pop(uri, None)
        os.replace(tmp, path)
        log.info("created the MLflow tracking store %s", path)


def client(config: Config) -> Any:
    """An ``MlflowClient`` on the config's tracking store (created first if it is a new local one)."""
    import mlflow

    ensure_store(config)
    mlflow.set_tracking_uri(config.tracking_uri)
    return mlflow.MlflowClient(tracking_uri=config.tracking_uri)


def experiment_id(config: Config) -> str:
    """The experiment's id, creating it (with its artifact location) if needed; safe against a concurrent create."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(config)
    experiment = mlflow_client.get_experiment_by_name(config.mlflow.experiment)
    if experiment is not None:
        return experiment.experiment_id
    location = (config.artifact_root / "mlruns").as_uri() if config.mlflow.tracking_uri is None else None
    try:
        return mlflow_client.create_experiment(config.mlflow.experiment, artifact_location=location)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return mlflow_client.get_experiment_by_name(config.mlflow.experiment).experiment_id  # created meanwhile


def _this_process() -> str:
    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{me.create_time():.3f}"


def _is_alive(process: str) -> bool:
    """Whether the process a run was opened by still runs (runs opened on another host count as alive)."""
    host, _, rest = process.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        return f"{psutil.Process(int(pid)).create_time():.3f}" == started
    except psutil.NoSuchProcess:
        return False


def fail_abandoned_runs(config: Config, experiment: str) -> list[str]:
    """Mark FAILED the runs still RUNNING whose process has died; returns their ids."""
    mlflow_client = client(config)
    failed = []
    for run in mlflow_client.search_runs([experiment], filter_string="attributes.status = 'RUNNING'"):
        process = run.data.tags.get(PROCESS_TAG, "")
        if process and not _is_alive(process):
            reason = f"the process that ran it ({process}) died before the run ended (killed?)"
            mlflow_client.set_tag(run.info.run_id, "failure_reason", reason)
            mlflow_client.set_terminated(run.info.run_id, status="FAILED")
            failed.append(run.info.run_id)
    if failed:
        log.warning("marked %d abandoned MLflow run(s) FAILED: %s", len(failed), failed)
    return failed


@contextmanager
def start_run(ctx: RunContext) -> Iterator[Any]:
    """Open a new MLflow run for this training attempt (after failing runs abandoned by dead processes)."""
    import mlflow

    experiment = experiment_id(ctx.config)
    fail_abandoned_runs(ctx.config, experiment)
    tags = {
        "ds": ctx.ds.isoformat(),
        "orchestrator_run_id": ctx.run_id,
        "attempt": str(ctx.attempt),
        "config_hash": ctx.config.fingerprint,
        "code_version": code_version(),
        PROCESS_TAG: _this_process(),
    }
    name = f"{ctx.ds.isoformat()} attempt {ctx.attempt}"
    with mlflow.start_run(experiment_id=experiment, run_name=name, tags=tags) as run:
        yield run
