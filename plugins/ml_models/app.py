"""The plugin's FastAPI app: the Models page, artifact pages, Data Docs offline, and rollback.

Mounted by the api-server under ``/ml-models`` (see ``ml_models_plugin.py``); imported only there, on
the first request. Every page needs an Airflow login: reading needs read access to the training DAG's
runs, a rollback needs the right to trigger it (Airflow's own ``requires_access_dag`` over the
``_token`` cookie the UI sets, or an ``Authorization: Bearer`` token from ``POST /auth/token``). Only
the vendored CSS/JS under ``static/`` is public. Artifact pages are confined to the use case's artifact
root and are served with a Content-Security-Policy that lets them load nothing from outside this
server and call nothing (no fetch, no forms), whatever a rendered value contains.
"""

from __future__ import annotations

import importlib.util
import mimetypes
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import Depends, FastAPI, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from ml_models import DAG_ID, pages
from ml_models.datadocs import offline
from pipelines.core import usecases
from pipelines.core.artifacts import METADATA, read_json
from pipelines.core.config import ConfigError
from pipelines.core.contracts import PipelineError, StageName
from pipelines.core.deployment_state import DeployError
from pipelines.reporting import models_view
from pipelines.reporting.models_view import OutsideArtifactRoot

STATIC = Path(__file__).parent / "static"
# GE's own images and fonts, from the installed package (found without importing GE, which takes seconds).
GE_STATIC = Path(importlib.util.find_spec("great_expectations").origin).parent / "render" / "view" / "static"
# Artifact pages may load only from this server, and may not call it or post forms (see the module doc).
ARTIFACT_CSP = (
    "default-src 'self' 'unsafe-inline' data:; connect-src 'none'; form-action 'none'; frame-ancestors 'self'"
)
PAGE_CSP = "default-src 'self' 'unsafe-inline' data:; connect-src 'none'; frame-ancestors 'self'"

CanRead = Depends(requires_access_dag("GET", DagAccessEntity.RUN, param_dag_id=DAG_ID))
CanTrigger = Depends(requires_access_dag("POST", DagAccessEntity.RUN, param_dag_id=DAG_ID))

app = FastAPI(title="Models", description="The ML of the training DAG inside Airflow", docs_url=None, redoc_url=None)
app.mount("/static/ge", StaticFiles(directory=GE_STATIC), name="ge-static")
app.mount("/static", StaticFiles(directory=STATIC), name="static")


def base_url(request: Request) -> str:
    """Where this app is mounted, as seen by the browser (Airflow's base path included)."""
    return request.scope.get("root_path", "").rstrip("/")


def _html(body: str, status: int = 200, csp: str = PAGE_CSP) -> HTMLResponse:
    return HTMLResponse(body, status, headers={"Content-Security-Policy": csp, "Cache-Control": "no-store"})


def _error(request: Request, title: str, message: str, status: int) -> HTMLResponse:
    return _html(pages.error_page(title, message, base_url(request)), status)


def _use_case(request: Request, name: str | None) -> tuple[str, models_view.Config] | HTMLResponse:
    try:
        return models_view.load_use_case(name)
    except ConfigError as exc:
        return _error(request, "Invalid config", f"{exc} (fix the YAML)", 500)
    except PipelineError as exc:
        return _error(request, "Unknown use case", str(exc), 404)


@app.get("/", dependencies=[CanRead])
def index(request: Request) -> RedirectResponse:
    return RedirectResponse(f"{base_url(request)}/models", 307)


@app.get("/models", dependencies=[CanRead], response_class=HTMLResponse)
def models(
    request: Request,
    use_case: Annotated[str | None, Query()] = None,
    message: Annotated[str | None, Query()] = None,
) -> Response:
    """The Models page of one use case (the first registered one by default)."""
    found = _use_case(request, use_case)
    if isinstance(found, Response):
        return found
    name, config = found
    view = models_view.overview(config, name)
    return _html(pages.models_page(view, usecases.registered(), base_url(request), message or ""))


@app.get("/models.json", dependencies=[CanRead])
def models_json(request: Request, use_case: Annotated[str | None, Query()] = None) -> Response:
    """The same content as data: the live slot and version, the slots, the runs and the history."""
    found = _use_case(request, use_case)
    if isinstance(found, Response):
        return found
    name, config = found
    view = models_view.overview(config, name)
    state = view.state
    return JSONResponse(
        {
            "use_case": name,
            "live_slot": str(state.live) if state and state.live else None,
            "live_version": view.live_version,
            "state": state.to_dict() if state else None,
            "runs": [vars(r) for r in view.runs],
            "problems": view.problems,
        }
    )


@app.get("/artifacts/{use_case}/{relative:path}", dependencies=[CanRead])
def artifact(request: Request, use_case: str, relative: str) -> Response:
    """A file under the use case's artifact root; Data Docs pages with their CDN references made local."""
    found = _use_case(request, use_case)
    if isinstance(found, Response):
        return found
    _, config = found
    try:
        path = models_view.artifact_path(config, relative)
        if path.is_dir():
            path = models_view.artifact_path(config, f"{relative.rstrip('/')}/index.html")
    except OutsideArtifactRoot as exc:
        return _error(request, "Not allowed", str(exc), 403)
    except FileNotFoundError as exc:
        return _error(request, "Not found", f"{exc}: has the run written it yet?", 404)
    headers = {"Content-Security-Policy": ARTIFACT_CSP, "Cache-Control": "no-store"}
    if path.suffix == ".html" and "data_docs" in path.parts:
        return HTMLResponse(offline(path.read_text(), f"{base_url(request)}/static"), headers=headers)
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers=headers)


@app.get("/decision/{use_case}/{ds}", dependencies=[CanRead], response_class=HTMLResponse)
def decision(request: Request, use_case: str, ds: str) -> Response:
    """D's gate decision, readable: action, reasons, every check, notes, who forced it."""
    found = _use_case(request, use_case)
    if isinstance(found, Response):
        return found
    name, config = found
    base = base_url(request)
    try:
        path = models_view.artifact_path(config, f"runs/{ds}/{models_view.PAGES['decision']}")
        record = read_json(path)
    except OutsideArtifactRoot as exc:
        return _error(request, "Not allowed", str(exc), 403)
    except (FileNotFoundError, PipelineError) as exc:
        return _error(request, "No decision", f"no readable gate decision for {ds}: {exc}", 404)
    card_file = path.parents[1] / models_view.CARD
    card = f"{base}/artifacts/{name}/runs/{ds}/{models_view.CARD}" if card_file.exists() else None
    return _html(pages.decision_page(name, ds, record, base, card))


@app.get("/mlflow/{use_case}/{ds}", dependencies=[CanRead], response_class=HTMLResponse)
def mlflow_run(request: Request, use_case: str, ds: str) -> Response:
    """D's MLflow training run: status, parameters and metrics (a link to the MLflow UI if it is a server)."""
    found = _use_case(request, use_case)
    if isinstance(found, Response):
        return found
    name, config = found
    try:
        meta = read_json(models_view.artifact_path(config, f"runs/{ds}/{StageName.TRAIN}/{METADATA}"))
    except OutsideArtifactRoot as exc:
        return _error(request, "Not allowed", str(exc), 403)
    except (FileNotFoundError, PipelineError) as exc:
        return _error(request, "No training run", f"no model was trained for {ds}: {exc}", 404)
    run_id = meta.get("mlflow_run_id")
    if not run_id:
        return _error(request, "No MLflow run", f"the training of {ds} recorded no MLflow run id", 404)
    from pipelines.core.tracking import client  # MLflow is heavy: only when someone asks for a run

    try:
        found_run = client(config).get_run(run_id)
        experiment = client(config).get_experiment(found_run.info.experiment_id)
    except Exception as exc:  # noqa: BLE001 - MLflow raises its own and SQLAlchemy's errors alike
        return _error(request, "MLflow run unreadable", f"run {run_id} in {config.tracking_uri}: {exc}", 502)
    server = None
    if config.tracking_uri.startswith(("http://", "https://")):
        server = f"{config.tracking_uri.rstrip('/')}/#/experiments/{found_run.info.experiment_id}/runs/{run_id}"
    run = {
        "run_id": run_id,
        "status": found_run.info.status,
        "experiment": experiment.name if experiment else found_run.info.experiment_id,
        "tracking_uri": config.tracking_uri,
        "metrics": found_run.data.metrics,
        "params": found_run.data.params,
        "tags": {k: v for k, v in found_run.data.tags.items() if not k.startswith("mlflow.")},
    }
    return _html(pages.mlflow_page(name, ds, run, base_url(request), server))


@app.post("/rollback", dependencies=[CanTrigger])
def rollback_live(
    request: Request,
    user: GetUserDep,
    use_case: Annotated[str | None, Query()] = None,
    reason: Annotated[str | None, Form()] = None,
) -> Response:
    """Make the previously live version live again, recorded with the Airflow user and the reason.

    A browser's form gets the Models page back with the outcome; an API client (``Accept: application/json``)
    gets JSON. 409 when there is nothing to roll back to, with the reason.
    """
    from pipelines.deployment.rollback import rollback

    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.url.netloc:  # SameSite=Lax already keeps the cookie home
        return _error(request, "Refused", f"a rollback posted from another site ({origin}) is not accepted", 403)
    found = _use_case(request, use_case)
    if isinstance(found, Response):
        return found
    name, config = found
    wants_json = "application/json" in request.headers.get("accept", "")
    who = user.get_name()
    try:
        state, line = rollback(config, run_id="airflow-ui", by=who, reason=reason or "rollback from the Models page")
    except DeployError as exc:
        if wants_json:
            return JSONResponse({"detail": f"cannot roll back: {exc}"}, 409)
        view = models_view.overview(config, name)
        cases = usecases.registered()
        return _html(pages.models_page(view, cases, base_url(request), f"Cannot roll back: {exc}", True), 409)
    if wants_json:
        return JSONResponse({"detail": line, "live_slot": str(state.live), "live_version": state.live_record.version})
    target = f"{base_url(request)}/models?{urlencode({'use_case': name, 'message': f'{line} (by {who})'})}"
    return RedirectResponse(target, 303)
