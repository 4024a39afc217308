"""MLflow tracking: one MLflow run per training attempt, found again by later stages by its id.

The default backend is SQLite with a file artifact store, both under the artifact root; pointing
``mlflow.tracking_uri`` in the config at a tracking server is the only change a team needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipelines.artifacts import code_version
from pipelines.config import Config
from pipelines.context import RunContext


def experiment_id(config: Config) -> str:
    """Set the tracking URI and return the experiment's id, creating it with its artifact location."""
    import mlflow

    mlflow.set_tracking_uri(config.tracking_uri)
    experiment = mlflow.get_experiment_by_name(config.mlflow.experiment)
    if experiment is not None:
        return experiment.experiment_id
    location = (config.artifact_root / "mlruns").as_uri() if config.mlflow.tracking_uri is None else None
    return mlflow.create_experiment(config.mlflow.experiment, artifact_location=location)


def register(config: Config, mlflow_run_id: str, version: str) -> str:
    """Register the run's ``model`` artifact as a version of the registered model (once per version).

    Returns:
        The registry's version number.
    """
    import mlflow

    mlflow.set_tracking_uri(config.tracking_uri)
    client = mlflow.MlflowClient()
    name = registered_model(config)
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    for existing in client.search_model_versions(f"name = '{name}' and run_id = '{mlflow_run_id}'"):
        if existing.tags.get("deployment_version") == version:
            return existing.version
    source = f"{client.get_run(mlflow_run_id).info.artifact_uri}/model"
    created = client.create_model_version(name, source, run_id=mlflow_run_id, tags={"deployment_version": version})
    return created.version


def sync_aliases(config: Config, state: dict[str, Any]) -> None:
    """Make the registry's aliases mirror the deployment state: ``blue``, ``green`` and ``live``."""
    import mlflow

    mlflow.set_tracking_uri(config.tracking_uri)
    client = mlflow.MlflowClient()
    name = registered_model(config)
    for slot, record in state["slots"].items():
        if record and record.get("registry_version"):
            client.set_registered_model_alias(name, slot, record["registry_version"])
    if state["live"]:
        client.set_registered_model_alias(name, "live", state["slots"][state["live"]]["registry_version"])


def registered_model(config: Config) -> str:
    return config.mlflow.registered_model or config.name


@contextmanager
def start_run(ctx: RunContext, mlflow_run_id: str | None = None) -> Iterator[Any]:
    """Open a new MLflow run for this training attempt, or resume ``mlflow_run_id``."""
    import mlflow

    exp = experiment_id(ctx.config)
    if mlflow_run_id:
        with mlflow.start_run(run_id=mlflow_run_id) as run:
            yield run
        return
    tags = {
        "ds": ctx.ds.isoformat(),
        "orchestrator_run_id": ctx.run_id,
        "attempt": str(ctx.attempt),
        "config_hash": ctx.config.fingerprint,
        "code_version": code_version(),
    }
    name = f"{ctx.ds.isoformat()} attempt {ctx.attempt}"
    with mlflow.start_run(experiment_id=exp, run_name=name, tags=tags) as run:
        yield run
