"""The Models plugin: the ML of the training DAG inside the Airflow UI.

* **Extra links** on the training DAG's tasks: Data Docs (``validate_snapshot``), drift report
  (``check_drift``), gate decision (``gate_candidate``), MLflow run (``train_model``) and the run card
  (``write_run_card`` and the delivery tasks), computed in the api-server from each task's XCom.
* **A "Models" page** in the UI's navigation (an external view of the app below): each use case's model
  versions with their gate decisions and key metrics, which version is live in which slot, the
  deployment history with who and why, links to every run's pages, and a rollback button.
* **A FastAPI app** at ``/ml-models``: that page, run cards, drift reports, readable decisions, MLflow
  runs and Great Expectations Data Docs that render offline, all behind Airflow's login.

Every Airflow process imports plugin files (the scheduler, the DAG processor, each task), so this one
imports only the plugin and link base classes: the app is built by the api-server on its first request.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin
from ml_models import URL_PREFIX
from ml_models.links import LINKS


class _AppOnFirstRequest:
    """An ASGI app that imports and builds ``ml_models.app`` when the first request arrives."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._app is None:
            from ml_models.app import app

            self._app = app
        await self._app(scope, receive, send)


class MlModelsPlugin(AirflowPlugin):
    name = "ml_models"
    global_operator_extra_links = LINKS
    fastapi_apps = [{"app": _AppOnFirstRequest(), "url_prefix": URL_PREFIX, "name": "Models"}]
    external_views = [
        {
            "name": "Models",
            "href": f"{URL_PREFIX.lstrip('/')}/models",
            "url_route": "models",
            "destination": "nav",
            "category": "browse",
        }
    ]
