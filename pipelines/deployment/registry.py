"""The MLflow model registry, kept as a mirror of the deployment state.

``state.json`` is the source of truth; the registry gets one version per deployed model version and
aliases (``blue``, ``green``, ``live``) that follow the state, so MLflow users see what is serving.
"""

from __future__ import annotations

from pipelines.core.config import Config
from pipelines.core.deployment_state import DeploymentState
from pipelines.core.tracking import MODEL_ARTIFACT, client


def registered_model(config: Config) -> str:
    """The registry name: ``mlflow.registered_model``, or the config's name."""
    return config.mlflow.registered_model or config.name


def register(config: Config, mlflow_run_id: str, version: str) -> str:
    """Register the run's model artifact as a version of the registered model (once per deployed version).

    Returns:
        The registry's version number.
    """
    from mlflow.exceptions import MlflowException

    mlflow_client, name = client(config), registered_model(config)
    if not mlflow_client.search_registered_models(filter_string=f"name = '{name}'"):
        try:
            mlflow_client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # another run created it a moment ago: fine
                raise
    for existing in mlflow_client.search_model_versions(f"name = '{name}' and run_id = '{mlflow_run_id}'"):
        if existing.tags.get("deployment_version") == version:
            return str(existing.version)
    source = f"{mlflow_client.get_run(mlflow_run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
    created = mlflow_client.create_model_version(
        name, source, run_id=mlflow_run_id, tags={"deployment_version": version}
    )
    return str(created.version)


def aliases(state: DeploymentState) -> dict[str, str]:
    """Alias -> registry version pairs that mirror ``state``: each filled slot, and ``live``."""
    pairs = {str(slot): r.registry_version for slot, r in state.slots.items() if r and r.registry_version}
    if state.live_record and state.live_record.registry_version:
        pairs["live"] = state.live_record.registry_version
    return pairs


def sync_aliases(config: Config, pairs: dict[str, str]) -> None:
    """Point each alias at its registry version."""
    mlflow_client, name = client(config), registered_model(config)
    for alias, registry_version in pairs.items():
        mlflow_client.set_registered_model_alias(name, alias, registry_version)
