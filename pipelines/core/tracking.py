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

import json
import logging
import os
import re
import socket
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from pipelines.core.artifacts import code_version, file_lock
from pipelines.core.config import Config
from pipelines.core.context import RunContext

log = logging.getLogger(__name__)

MODEL_ARTIFACT = "model"  # the artifact path of the SavedModel in a training run
INPUT_EXAMPLE = "input_example.json"  # raw rows beside the SavedModel, described in its MLmodel file
PROCESS_TAG = "process"  # "<host>:<pid>:<process start time>" of the process that opened the run
DIGEST_LENGTH = 36  # MLflow keeps this many characters of a dataset's digest
_SQLITE = "sqlite:///"
_NAME = re.compile(r"[\w\-. /:]+")  # what MLflow accepts as a param name


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
        store = SqlAlchemyStore(uri, _artifact_location(config))  # creates every table
        store.engine.dispose()
        getattr(SqlAlchemyStore, "_engine_map", {}).pop(uri, None)
        os.replace(tmp, path)
        log.info("created the MLflow tracking store %s", path)


def _artifact_location(config: Config) -> str | None:
    """Where a SQLite store keeps run artifacts: ``mlruns/`` beside the database file (not the working directory,
    MLflow's default); None for a tracking server, which has its own."""
    uri = config.tracking_uri
    return (Path(uri[len(_SQLITE) :]).parent / "mlruns").as_uri() if uri.startswith(_SQLITE) else None


def client(config: Config) -> Any:
    """An ``MlflowClient`` on the config's tracking store (created first if it is a new local one)."""
    import mlflow

    ensure_store(config)
    mlflow.set_tracking_uri(config.tracking_uri)
    return mlflow.MlflowClient(tracking_uri=config.tracking_uri)


def experiment_id(config: Config) -> str:
    """The experiment's id, creating it (with its artifact location) if needed; safe against a concurrent create."""
    from mlflow.exceptions import MlflowException

    mlflow_client, name = client(config), config.mlflow.experiment or config.name
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = _artifact_location(config)
    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return mlflow_client.get_experiment_by_name(name).experiment_id  # created meanwhile


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


def flat_params(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings as MLflow params: each sub-setting under its dotted key (``early_stopping.patience``); a
    list, or a mapping whose keys MLflow does not take as names (label values such as ``>50K``), as one JSON value.
    """
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and all(_NAME.fullmatch(str(k)) for k in value):
            flat.update(flat_params(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, Mapping | list) else value
    return flat


def log_datasets(datasets: Mapping[str, tuple[str | Path, str]]) -> None:
    """Record the data the active run used as its MLflow dataset inputs, in one call.

    Args:
        datasets: each dataset's name (also its context: ``train``, ``validation``, ...) -> (its local path, its
            content fingerprint). MLflow keeps the fingerprint's first ``DIGEST_LENGTH`` characters as the digest.
    """
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    mlflow.log_inputs(
        datasets=[
            MetaDataset(LocalArtifactDatasetSource(str(source)), name=name, digest=fingerprint[:DIGEST_LENGTH])
            for name, (source, fingerprint) in datasets.items()
        ],
        contexts=list(datasets),
        tags_list=[None] * len(datasets),
    )


def log_saved_model(
    model_dir: Path, inputs: Mapping[str, str], output: str, example: Any, classes: int | None = None
) -> None:
    """Log an exported SavedModel as the active run's ``model`` artifact, described as an MLflow model.

    Its ``MLmodel`` file gives the ``tensorflow`` flavor (``mlflow.tensorflow.load_model`` returns the loaded
    SavedModel), the signature (the raw input columns, each optional, to one float ``output``, or with
    ``classes`` a float tensor [rows, classes]) and the input example (``example``'s rows, in
    ``input_example.json``).

    Args:
        model_dir: the SavedModel's folder.
        inputs: each raw input column and its MLflow type (``float``, ``string``, ...).
        output: the name of the model's output.
        example: a few raw rows (a pandas DataFrame of the input columns).
        classes: a multi-class model's number of classes (its output's columns); None for one probability.
    """
    import mlflow
    import numpy as np
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    answer = ColSpec("float", output) if classes is None else TensorSpec(np.dtype("float32"), (-1, classes), output)
    signature = ModelSignature(
        Schema([ColSpec(kind, name, required=False) for name, kind in inputs.items()]), Schema([answer])
    )
    description = Model(
        artifact_path=MODEL_ARTIFACT,
        run_id=mlflow.active_run().info.run_id,
        signature=signature,
        saved_input_example_info={"artifact_path": INPUT_EXAMPLE, "type": "dataframe", "pandas_orient": "split"},
    )
    description.add_flavor("tensorflow", saved_model_dir=".", model_type="tf2-module", code=None)
    with tempfile.TemporaryDirectory() as tmp:
        description.save(str(Path(tmp) / "MLmodel"))
        (Path(tmp) / INPUT_EXAMPLE).write_text(example.to_json(orient="split", index=False))
        mlflow.log_artifacts(str(model_dir), artifact_path=MODEL_ARTIFACT)
        mlflow.log_artifacts(tmp, artifact_path=MODEL_ARTIFACT)
