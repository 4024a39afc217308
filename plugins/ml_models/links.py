"""Extra links on the training DAG's tasks: Data Docs, drift report, gate decision, MLflow run, run card.

Airflow 3 computes a plugin's global link in the api-server, from the task instance's key, when someone
opens the task instance: nothing runs in the task. Each link reads the task's XCom (the stage folder's
URI that every stage task returns), finds the registered use case whose artifact root holds it, and
points at the page the plugin's app serves for it. A link whose page does not exist (the task did not
run, failed before writing, or its use case is not registered) is empty, which the UI hides.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from airflow.sdk import BaseOperatorLink

from ml_models import DAG_ID, URL_PREFIX

log = logging.getLogger(__name__)

# The tasks whose XCom is a stage folder, runs/<D>/<stage>: any of them tells a run's use case and D.
STAGE_TASKS = (
    "ingest_window",
    "check_drift",
    "validate_snapshot",
    "transform_features",
    "train_model",
    "evaluate_model",
    "gate_candidate",
)
DELIVERY_TASKS = ("route_decision", "promote_blue_green", "hold_candidate", "trigger_retrain", "write_run_card")


def _xcoms(ti_key: Any, task_ids: tuple[str, ...]) -> dict[str, Any]:
    """The return values of ``task_ids`` in the run of ``ti_key`` (read in the api-server's database)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.execute(
            XComModel.get_many(
                run_id=ti_key.run_id, key="return_value", dag_ids=ti_key.dag_id, task_ids=list(task_ids)
            ).with_only_columns(XComModel.task_id, XComModel.value)
        ).all()
    values = {}
    for task_id, value in rows:
        if isinstance(value, str | bytes):
            with contextlib.suppress(ValueError):  # stored as JSON text by some backends
                value = json.loads(value)
        values[task_id] = value
    return values


def _base() -> str:
    """The path the plugin's app is reachable at, behind Airflow's own ``[api] base_url``."""
    from airflow.configuration import conf

    return urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/") + URL_PREFIX


class RunArtifactLink(BaseOperatorLink):
    """A link from some of the training DAG's tasks to a page about their run's artifacts."""

    name: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]]  # the tasks that show this link
    source: ClassVar[tuple[str, ...] | None] = None  # the tasks whose XCom locates the run (None: the task itself)
    artifact: ClassVar[str | None] = None  # a file in the stage folder, served as it is

    def page(self, use_case: str, stage: str, config: Any) -> str | None:
        """The page's path under the app for the stage folder ``stage`` (relative to the artifact root):
        by default the stage's ``artifact`` file, once it exists; links to other pages override this."""
        relative = f"{stage}/{self.artifact}"
        return _artifact(use_case, relative) if self.artifact and _exists(config, relative) else None

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        if ti_key.dag_id != DAG_ID or ti_key.task_id not in self.tasks:
            return ""
        from pipelines.reporting import models_view

        values = _xcoms(ti_key, self.source or (ti_key.task_id,))
        uri = next((v for v in values.values() if isinstance(v, str) and v), None)
        if uri is None:
            return ""
        configs = models_view.load_all()
        found = models_view.locate(uri, configs)
        if found is None:
            log.info("%s: %s is under no registered use case's artifact root; no %s link", ti_key, uri, self.name)
            return ""
        use_case, relative = found
        if len(Path(relative).parts) < 3 or Path(relative).parts[0] != "runs":
            return ""  # not a stage folder runs/<D>/<stage>
        target = self.page(use_case, relative, configs[use_case])
        return f"{_base()}/{target}" if target else ""


def _exists(config: Any, relative: str) -> bool:
    from pipelines.reporting import models_view

    try:
        models_view.artifact_path(config, relative)
    except (FileNotFoundError, models_view.OutsideArtifactRoot):
        return False
    return True


def _artifact(use_case: str, relative: str) -> str:
    return f"artifacts/{quote(use_case)}/{quote(relative)}"


def _run(relative: str) -> tuple[str, str]:
    """``runs/<D>`` and D, from a stage folder's path ``runs/<D>/<stage>``."""
    parts = Path(relative).parts
    return f"runs/{parts[1]}", parts[1]


class DataDocsLink(RunArtifactLink):
    name = "Data Docs"
    tasks = ("validate_snapshot",)
    artifact = "data_docs/index.html"


class DriftReportLink(RunArtifactLink):
    name = "Drift report"
    tasks = ("check_drift",)
    artifact = "drift.html"


class DecisionLink(RunArtifactLink):
    name = "Gate decision"
    tasks = ("gate_candidate",)

    def page(self, use_case: str, stage: str, config: Any) -> str | None:
        run, ds = _run(stage)
        return f"decision/{quote(use_case)}/{ds}" if _exists(config, f"{run}/gate/decision.json") else None


class MlflowRunLink(RunArtifactLink):
    name = "MLflow run"
    tasks = ("train_model",)

    def page(self, use_case: str, stage: str, config: Any) -> str | None:
        from pipelines.reporting import models_view

        ds = _run(stage)[1]
        return f"mlflow/{quote(use_case)}/{ds}" if models_view.mlflow_run_id(config, stage) else None


class RunCardLink(RunArtifactLink):
    name = "Run card"
    tasks = DELIVERY_TASKS
    source = STAGE_TASKS

    def page(self, use_case: str, stage: str, config: Any) -> str | None:
        from pipelines.reporting import models_view

        relative = f"{_run(stage)[0]}/{models_view.CARD}"
        return _artifact(use_case, relative) if _exists(config, relative) else None


LINKS = [DataDocsLink(), DriftReportLink(), DecisionLink(), MlflowRunLink(), RunCardLink()]
