"""A model server for one deployment slot, speaking TensorFlow Serving's REST API with raw features.

``python -m pipelines serve --slot blue`` loads the SavedModel the deployment state puts in that slot
and answers:

* ``GET /v1/models/{name}``: version status (``AVAILABLE`` once loaded and warmed up);
* ``GET /v1/models/{name}/metadata``: the signature, one input per raw feature;
* ``POST /v1/models/{name}:predict``: ``{"instances": [...]}`` (rows) or ``{"inputs": {...}}``
  (columns) of raw feature values; answers ``probability`` and ``class`` per row (a multi-class model:
  ``class`` is the most probable class's id, ``probability`` its probability, ``label`` its value and
  ``probabilities`` every class's, by value);
* ``/healthz`` (the process is up), ``/readyz`` (the model is loaded and warmed up), ``/metrics``
  (Prometheus: requests by status, latency, prediction distribution, labelled by slot and version).

A refused request gets a 4xx with ``{"error": "..."}`` naming the field; nothing a client sends can
crash the process. The server follows its slot: when the deployment state puts another version there,
it loads and warms it up while the old one answers, then swaps it in. Every answer carries
``X-Model-Version`` and ``X-Slot`` headers. The same contract is what the official
``tensorflow/serving`` image offers per slot in production (``docker/``), with the transform graph
inside the model in both cases.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from pipelines.core import storage
from pipelines.core.config import Config
from pipelines.core.deployment_state import Slot, deployment_dir, read_state, state_path
from pipelines.deployment.registry import registered_model
from pipelines.model.scoring import load_scorer, predict_with
from pipelines.model.signature import OUTPUT, SIGNATURE, read_threshold
from pipelines.serving.requests import RequestError, parse_predict

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Idle keep-alive connections are kept this long (uvicorn's default: 5 s), longer than the router keeps its own
# (``router.POOL_KEEPALIVE_SECONDS``) and than common clients do, so an idle connection is closed by its client.
KEEP_ALIVE_SECONDS = 75


@dataclass(frozen=True)
class Loaded:
    """A loaded, warmed-up model and the version it is; swapped whole, so a request sees one or the other."""

    serve: Any
    version: str
    registry_version: str | None
    threshold: float  # the model's decision threshold: ``class`` is 1 from it on


class SlotModel:
    """The model the deployment state puts in one slot, kept current, and the server's metrics.

    The state is watched: when another version is put into the slot (a promotion or rollback fills the
    standby slot), it is loaded and warmed up while the old one keeps answering, then swapped in.
    """

    def __init__(self, config: Config, slot: Slot) -> None:
        self.config, self.slot = config, slot
        self.loaded: Loaded | None = None
        self.problem: str | None = "loading the model"
        self.metrics = CollectorRegistry()
        labels = ["slot", "version"]
        self.requests = Counter(
            "predict_requests", "Predict requests by status code", [*labels, "code"], registry=self.metrics
        )
        self.latency = Histogram(
            "predict_latency_seconds",
            "Time to answer a predict request",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.metrics,
        )
        self.scores = Histogram(
            "prediction_probability",
            "Predicted probability of the positive class (a multi-class label: of the predicted class)",
            labels,
            buckets=tuple(i / 10 for i in range(1, 11)),
            registry=self.metrics,
        )

    def refresh(self) -> None:
        """Load the version the state now puts in the slot, unless it is the one already loaded."""
        try:
            record = read_state(self.config).slots[self.slot]
            if record is None:
                self.problem = f"slot {self.slot} holds no model: nothing has been promoted to it"
                return
            if self.loaded and self.loaded.version == record.version:
                return
            serve = load_scorer(record.model_uri)
            predict_with(serve, _first_row(record.reference_uri), self.config.data_schema)  # warm up
            loaded = Loaded(serve, record.version, record.registry_version, read_threshold(record.model_uri))
            self.loaded, self.problem = loaded, None
            log.info("slot %s serving %s", self.slot, record.version)
        except Exception as exc:  # noqa: BLE001 - reported by /readyz; a loaded model keeps serving
            log.exception("loading the model of slot %s failed", self.slot)
            if self.loaded is None:
                self.problem = f"could not load the model of slot {self.slot}: {exc}"

    def watch(self, stop: threading.Event) -> None:
        """Refresh now, then whenever the state file changes, until ``stop`` is set (with an object-store
        artifact root, the deployment folder is pulled first each time)."""
        path, seen = state_path(self.config), None
        while not stop.is_set():
            follow_store(self.config)
            stamp = path.stat().st_mtime_ns if path.exists() else None
            if stamp != seen or self.loaded is None:
                seen = stamp
                self.refresh()
            stop.wait(self.config.serving.reload_seconds)


def follow_store(config: Config) -> None:
    """Pull the deployment folder (state, model versions) from an object-store artifact root; a store that
    cannot be reached is logged and the servers go on with what they have."""
    if config.artifact_store:
        try:
            storage.refresh(deployment_dir(config))
        except storage.StorageError as exc:
            log.warning("could not pull the deployment state from %s: %s", config.artifact_store, exc)


def _first_row(parquet: str) -> pd.DataFrame:
    """One row of a Parquet file, without reading the rest of it."""
    import pyarrow.parquet as pq

    return next(pq.ParquetFile(parquet).iter_batches(batch_size=1)).to_pandas()


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(config: Config, slot: Slot) -> FastAPI:
    """The FastAPI app of one slot's model server; the model loads in the background at start-up."""
    model = SlotModel(config, slot)
    name = registered_model(config)
    schema = config.data_schema

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        threading.Thread(target=model.watch, args=(stop,), name=f"watch-{slot}", daemon=True).start()
        yield
        stop.set()

    app = FastAPI(title=f"{name} model server ({slot})", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.model = model

    def headers(loaded: Loaded | None) -> dict[str, str]:
        return {"X-Slot": str(slot), "X-Model-Version": loaded.version if loaded else ""}

    def refuse(requested: str, loaded: Loaded | None) -> JSONResponse | None:
        if requested != name:
            return _error(404, f"no model named {requested!r}: this server serves {name!r}", headers(loaded))
        if loaded is None:
            return _error(503, model.problem or "no model loaded", headers(loaded))
        return None

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        loaded = model.loaded
        if loaded is None:
            return _error(503, model.problem or "no model loaded", headers(loaded))
        return JSONResponse({"status": "ready", "slot": str(slot), "version": loaded.version}, headers=headers(loaded))

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(model.metrics), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models/{requested}")
    def model_status(requested: str) -> JSONResponse:
        loaded = model.loaded
        if requested != name:
            return _error(404, f"no model named {requested!r}: this server serves {name!r}")
        if loaded is None:
            state = "LOADING" if model.problem == "loading the model" else "END"
            status = {"error_code": "UNAVAILABLE", "error_message": model.problem or ""}
            version = ""
        else:
            state, status = "AVAILABLE", {"error_code": "OK", "error_message": ""}
            version = loaded.registry_version or loaded.version
        body = {"model_version_status": [{"version": version, "state": state, "status": status}]}
        return JSONResponse(body, headers=headers(loaded))

    @app.get("/v1/models/{requested}/metadata")
    def model_metadata(requested: str) -> JSONResponse:
        loaded = model.loaded
        refused = refuse(requested, loaded)
        if refused:
            return refused
        dtype = {"numeric": "DT_FLOAT", "categorical": "DT_STRING"}
        inputs = {
            f.name: {"name": f.name, "dtype": dtype[f.kind], "tensor_shape": {"dim": [{"size": "-1"}]}}
            for f in schema.model_features
        }
        answered = [(OUTPUT, "DT_FLOAT"), ("class", "DT_INT64")]
        if schema.label.is_multiclass:  # the predicted class's value, and every class's probability by value
            answered += [("label", "DT_STRING"), ("probabilities", "DT_FLOAT")]
        outputs = {key: {"name": key, "dtype": dt, "tensor_shape": {"dim": [{"size": "-1"}]}} for key, dt in answered}
        signature = {"inputs": inputs, "outputs": outputs, "method_name": "tensorflow/serving/predict"}
        spec = {"name": name, "signature_name": SIGNATURE, "version": loaded.registry_version or loaded.version}
        body = {"model_spec": spec, "metadata": {"signature_def": {"signature_def": {SIGNATURE: signature}}}}
        return JSONResponse(body, headers=headers(loaded))

    @app.post("/v1/models/{requested}:predict")
    async def predict(requested: str, request: Request) -> JSONResponse:
        start, loaded = time.perf_counter(), model.loaded  # one model for the whole request, even across a swap
        response = await _predict(requested, request, loaded)
        labels = (str(slot), loaded.version if loaded else "")
        model.requests.labels(*labels, str(response.status_code)).inc()
        model.latency.labels(*labels).observe(time.perf_counter() - start)
        return response

    async def _predict(requested: str, request: Request, loaded: Loaded | None) -> JSONResponse:
        refused = refuse(requested, loaded)
        if refused:
            return refused
        raw, limit = await request.body(), config.serving.max_body_bytes
        if len(raw) > limit:
            message = f"the body has {len(raw)} bytes, more than serving.max_body_bytes {limit}"
            return _error(413, message, headers(loaded))
        try:
            rows, form = parse_predict(json.loads(raw), schema, config.serving.max_batch)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return _error(400, f"the body is not valid JSON: {exc}", headers(loaded))
        except RequestError as exc:
            return _error(exc.status, str(exc), headers(loaded))
        scored = await run_in_threadpool(predict_with, loaded.serve, rows, schema)
        if scored.ndim == 2:
            return JSONResponse(
                _multiclass_body(scored, form, schema.label.classes, model, slot, loaded), headers=headers(loaded)
            )
        probabilities = scored.tolist()
        for p in probabilities:
            model.scores.labels(str(slot), loaded.version).observe(p)
        classes = [int(p >= loaded.threshold) for p in probabilities]
        if form == "instances":
            body = {"predictions": [{OUTPUT: p, "class": c} for p, c in zip(probabilities, classes, strict=True)]}
        else:
            body = {"outputs": {OUTPUT: probabilities, "class": classes}}
        return JSONResponse(body, headers=headers(loaded))

    return app


def _multiclass_body(
    scored: Any, form: str, classes: tuple[str, ...], model: SlotModel, slot: Slot, loaded: Loaded
) -> dict[str, Any]:
    """A multi-class answer: per row the most probable class (``class`` its id, ``label`` its value), its
    ``probability`` (what the prediction histogram, the skew check and the prediction log read), and
    ``probabilities``, every class's by value."""
    ids = scored.argmax(axis=1).tolist()
    chosen = [float(row[i]) for row, i in zip(scored, ids, strict=True)]
    for p in chosen:
        model.scores.labels(str(slot), loaded.version).observe(p)
    labels = [classes[i] for i in ids]
    each = [dict(zip(classes, (float(v) for v in row), strict=True)) for row in scored]
    if form == "instances":
        rows = zip(chosen, ids, labels, each, strict=True)
        return {"predictions": [{OUTPUT: p, "class": i, "label": v, "probabilities": e} for p, i, v, e in rows]}
    return {"outputs": {OUTPUT: chosen, "class": ids, "label": labels, "probabilities": each}}


def serve(config: Config, slot: Slot, host: str = "127.0.0.1", port: int = 8501) -> None:
    """Run the slot's model server until interrupted."""
    run_app(create_app(config, slot), host, port, log_level="info")


def run_app(app: FastAPI, host: str, port: int, log_level: str) -> None:
    """Serve ``app`` with uvicorn until interrupted: uvloop, httptools, idle connections kept ``KEEP_ALIVE_SECONDS``."""
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )
