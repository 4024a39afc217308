"""The router: the one address clients use, in front of the blue and green model servers.

``python -m pipelines router`` speaks the same TensorFlow Serving REST API as a model server and:

* forwards each predict request to the **live** slot's server, as the deployment state says; the state
  file is checked on every request (one ``stat``), so a switch or rollback takes effect on the next
  request, without a restart and without dropping one in flight;
* sends ``routing.canary_weight`` of the requests to the **standby** slot (a canary); if the standby
  server cannot be reached, the request goes to live instead;
* with ``routing.shadow``, mirrors every request to the standby slot after answering from live, and
  records both answers (the client gets only live's);
* logs every prediction (``pipelines.core.prediction_log``: request id, time, raw features, answer,
  slot, version, latency) in hourly files, written in batches off the request path;
* ``POST /feedback`` records a delayed true label for a request id (from the ``X-Request-ID`` header
  of its answer, or the one the client sent);
* ``GET /stats`` summarizes recent answers per version (the deployment controller's canary and
  shadow evidence), ``/metrics`` is Prometheus, ``/healthz`` and ``/readyz`` (live server ready);
* admin endpoints (``/admin/switch``, ``/admin/rollback``, ``/admin/canary``, ``/admin/shadow``,
  ``/admin/state``) need ``Authorization: Bearer <token>``, the token being the environment variable
  named by ``serving.admin_token_env``; a missing or wrong token gets 401 and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import numpy as np
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from pipelines.core.config import Config
from pipelines.core.contracts import PipelineError
from pipelines.core.deployment_state import Slot, read_state, state_path
from pipelines.core.prediction_log import FEEDBACK, PREDICTIONS, LogWriter
from pipelines.deployment.controller import set_routing, switch_standby
from pipelines.deployment.endpoints import Endpoints, configured
from pipelines.deployment.registry import registered_model
from pipelines.deployment.rollback import rollback
from pipelines.serving.server import LATENCY_BUCKETS, follow_store, run_app

log = logging.getLogger(__name__)

STATS_KEPT = 200_000  # recent answers kept in memory for /stats
# Idle connections to the slot servers are kept this long, shorter than the servers keep them
# (``server.KEEP_ALIVE_SECONDS``), so the router closes an idle connection before its server does.
POOL_KEEPALIVE_SECONDS = 30
# A request sent on a pooled connection that its server closed meanwhile (it timed out while idle, or the server
# restarted) fails before any answer: it is sent again once, on a new connection.
STALE_CONNECTION = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


@dataclass(frozen=True)
class Route:
    """Where requests go now: the live slot and version, the standby's, and the traffic split."""

    live: Slot | None
    live_version: str
    standby_version: str | None
    canary_weight: float
    shadow: bool
    lease_deadline: float | None  # time.time() after which canary and shadow lapse

    def split(self) -> tuple[float, bool]:
        """(canary weight, shadow) in force now: none once the lease has lapsed or the standby slot is empty."""
        if self.standby_version is None or (self.lease_deadline is not None and time.time() >= self.lease_deadline):
            return 0.0, False
        return self.canary_weight, self.shadow


class RouteTable:
    """The deployment state as routes, re-read when the state file changes (checked on every request)."""

    def __init__(self, config: Config) -> None:
        self.config, self.path = config, state_path(config)
        self.stamp: int | None = -1
        self.route = Route(None, "", None, 0.0, False, None)

    def current(self) -> Route:
        """The route for the next request."""
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp != self.stamp:
            try:
                state = read_state(self.config)
            except PipelineError:
                log.exception("cannot read the deployment state: routing as before")
                return self.route
            routing, live = state.routing, state.live
            standby = state.slots[live.other] if live else None
            deadline = datetime.fromisoformat(routing.lease_until).timestamp() if routing.lease_until else None
            self.route = Route(
                live,
                state.live_record.version if live else "",
                standby.version if standby else None,
                routing.canary_weight,
                routing.shadow,
                deadline,
            )
            self.stamp = stamp
        return self.route


@dataclass
class Answer:
    """One upstream exchange."""

    slot: Slot | None  # None: the router answered itself (no server could)
    role: str
    status: int
    body: bytes
    version: str
    latency_ms: float


class Recorder:
    """The prediction and feedback logs (buffered, written by a worker thread) and the recent-answer window."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.writers = {PREDICTIONS: LogWriter(config, PREDICTIONS), FEEDBACK: LogWriter(config, FEEDBACK)}
        self.buffers: dict[str, list[dict[str, Any]]] = {PREDICTIONS: [], FEEDBACK: []}
        self.recent: deque[tuple[int, str, str, int, float, bool | None]] = deque(maxlen=STATS_KEPT)
        self.seq = 0
        self.wake = asyncio.Event()

    def add(self, kind: str, record: dict[str, Any]) -> None:
        """Buffer a record; the writer is woken when a batch is full."""
        buffer = self.buffers[kind]
        buffer.append(record)
        if len(buffer) >= self.config.serving.log_batch:
            self.wake.set()

    def answered(self, request_id: str, request: bytes, answer: Answer, agreed: bool | None = None) -> None:
        """Record one answer in the log and the window."""
        self.seq += 1
        self.recent.append((self.seq, answer.version, answer.role, answer.status, answer.latency_ms, agreed))
        record = {
            "request_id": request_id,
            "time": datetime.now(UTC).isoformat(),
            "role": answer.role,
            "slot": str(answer.slot) if answer.slot else None,
            "version": answer.version,
            "status": answer.status,
            "latency_ms": round(answer.latency_ms, 3),
            "request": request,
            "response": answer.body,
        }
        self.add(PREDICTIONS, record)

    async def run(self) -> None:
        """Write the buffers every ``log_flush_seconds`` or when one is full, until cancelled (then write the rest)."""
        try:
            while True:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.config.serving.log_flush_seconds)
                self.wake.clear()
                await self.flush()
        finally:
            await self.flush()

    async def flush(self) -> None:
        """Write what is buffered (in a thread: the event loop keeps answering)."""
        for kind, buffer in self.buffers.items():
            if buffer:
                self.buffers[kind], batch = [], buffer
                try:
                    await asyncio.to_thread(self.writers[kind].write, [_decoded(r) for r in batch])
                except OSError:
                    log.exception("writing %d %s record(s) failed", len(batch), kind)

    def stats(self, since: int, version: str) -> dict[str, Any]:
        """Answers of ``version`` after sequence number ``since``: counts, errors, latency, shadow agreement."""
        rows = [r for r in self.recent if r[0] > since and r[1] == version]
        served = [r for r in rows if r[2] != "shadow"]
        latencies = [r[4] for r in rows]
        compared = [r[5] for r in rows if r[2] == "shadow" and r[5] is not None]

        def pct(q: float) -> float | None:
            return round(float(np.percentile(latencies, q)), 3) if latencies else None

        return {
            "seq": self.seq,
            "version": version,
            "requests": len(served),
            "errors": sum(r[3] != 200 for r in served),
            "shadow": {"requests": len(rows) - len(served), "compared": len(compared), "agreed": sum(compared)},
            "p50_ms": pct(50),
            "p99_ms": pct(99),
        }


def _decoded(record: dict[str, Any]) -> dict[str, Any]:
    """A record with its request and response bodies as JSON values (strings if they were not JSON)."""
    out = dict(record)
    for key in ("request", "response"):
        raw = record.get(key)
        if isinstance(raw, bytes):
            try:
                out[key] = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                out[key] = raw.decode("utf-8", errors="replace")
    return out


def _classes(body: bytes) -> list[int] | None:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if "predictions" in data:
        return [p.get("class") for p in data["predictions"]]
    return list(data.get("outputs", {}).get("class", [])) or None


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(config: Config, endpoints: Endpoints | None = None) -> FastAPI:
    """The router's FastAPI app; ``endpoints`` defaults to the config's host and ports (or ``serving.urls``)."""
    endpoints = endpoints or configured(config)
    table, name = RouteTable(config), registered_model(config)
    token = os.environ.get(config.serving.admin_token_env) or None
    metrics = CollectorRegistry()
    requests = Counter(
        "router_requests",
        "Requests by slot, version, role and status",
        ["slot", "version", "role", "code"],
        registry=metrics,
    )
    latency = Histogram(
        "router_latency_seconds",
        "Time to answer through the router",
        ["slot", "version", "role"],
        buckets=LATENCY_BUCKETS,
        registry=metrics,
    )
    shared: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(limit=512, keepalive_timeout=POOL_KEEPALIVE_SECONDS)
        shared["session"] = aiohttp.ClientSession(connector=connector, timeout=timeout)
        shared["fresh"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), timeout=timeout)
        shared["recorder"] = recorder = Recorder(config)
        tasks = [asyncio.create_task(recorder.run())]
        if config.artifact_store:
            tasks.append(asyncio.create_task(follow()))
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await shared["session"].close()
        await shared["fresh"].close()

    async def follow() -> None:
        """With an object-store artifact root: pull the deployment state every ``reload_seconds``."""
        while True:
            await asyncio.to_thread(follow_store, config)
            await asyncio.sleep(config.serving.reload_seconds)

    app = FastAPI(title=f"{name} router", lifespan=lifespan, docs_url=None, redoc_url=None)

    async def call(slot: Slot, role: str, method: str, path: str, body: bytes | None = None) -> Answer:
        start = time.perf_counter()
        try:
            return await exchange(shared["session"], slot, role, method, path, body, start)
        except STALE_CONNECTION as exc:
            log.info("slot %s closed a kept connection (%r): sending again on a new one", slot, exc)
            return await exchange(shared["fresh"], slot, role, method, path, body, start)

    async def exchange(
        session: aiohttp.ClientSession, slot: Slot, role: str, method: str, path: str, body: bytes | None, start: float
    ) -> Answer:
        headers = {"content-type": "application/json"} if body is not None else None
        async with session.request(method, endpoints.slot(slot) + path, data=body, headers=headers) as response:
            content = await response.read()
            version = response.headers.get("X-Model-Version", "")
            return Answer(slot, role, response.status, content, version, (time.perf_counter() - start) * 1000)

    def reply(answer: Answer, request_id: str | None = None) -> Response:
        headers = {"X-Slot": str(answer.slot), "X-Model-Version": answer.version, "X-Route": answer.role}
        if request_id:
            headers["X-Request-ID"] = request_id
        return Response(answer.body, status_code=answer.status, media_type="application/json", headers=headers)

    async def to_live(route: Route, method: str, path: str, body: bytes | None = None) -> Answer | JSONResponse:
        if route.live is None:
            return _error(503, "no model is live yet: promote one first")
        try:
            return await call(route.live, "live", method, path, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            url = endpoints.slot(route.live)
            return _error(503, f"the live slot's server ({route.live} at {url}) cannot be reached: {exc!r}")

    @app.post("/v1/models/{requested}:predict")
    async def predict(requested: str, request: Request) -> Response:
        body, route = await request.body(), table.current()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        weight, shadow = route.split()
        path = f"/v1/models/{requested}:predict"
        answer: Answer | JSONResponse | None = None
        if weight and random.random() < weight:
            try:
                answer = await call(route.live.other, "canary", "POST", path, body)
            except (aiohttp.ClientError, TimeoutError):
                log.warning("the canary slot %s cannot be reached: answering from live", route.live.other)
        if answer is None:
            answer = await to_live(route, "POST", path, body)
        if isinstance(answer, JSONResponse):  # logged too: monitoring counts it as a failed request
            requests.labels("", "", "live", str(answer.status_code)).inc()
            failed = Answer(route.live, "live", answer.status_code, answer.body, route.live_version, 0.0)
            shared["recorder"].answered(request_id, body, failed)
            answer.headers["X-Request-ID"] = request_id
            return answer
        requests.labels(str(answer.slot), answer.version, answer.role, str(answer.status)).inc()
        latency.labels(str(answer.slot), answer.version, answer.role).observe(answer.latency_ms / 1000)
        recorder: Recorder = shared["recorder"]
        recorder.answered(request_id, body, answer)
        if shadow and answer.role == "live":
            asyncio.create_task(mirror(route, path, body, request_id, answer))
        return reply(answer, request_id)

    async def mirror(route: Route, path: str, body: bytes, request_id: str, live: Answer) -> None:
        try:
            copy = await call(route.live.other, "shadow", "POST", path, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            copy = Answer(
                route.live.other,
                "shadow",
                0,
                json.dumps({"error": repr(exc)}).encode(),
                route.standby_version or "",
                0.0,
            )
        agreed = None
        if copy.status == 200 and live.status == 200:
            agreed = _classes(copy.body) == _classes(live.body)
        shared["recorder"].answered(request_id, body, copy, agreed)

    @app.get("/v1/models/{requested}")
    async def model_status(requested: str) -> Response:
        answer = await to_live(table.current(), "GET", f"/v1/models/{requested}")
        return answer if isinstance(answer, JSONResponse) else reply(answer)

    @app.get("/v1/models/{requested}/metadata")
    async def model_metadata(requested: str) -> Response:
        answer = await to_live(table.current(), "GET", f"/v1/models/{requested}/metadata")
        return answer if isinstance(answer, JSONResponse) else reply(answer)

    @app.post("/feedback")
    async def feedback(request: Request) -> JSONResponse:
        try:
            record = _feedback(await request.json(), config)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the body is not valid JSON")
        except ValueError as exc:
            return _error(400, str(exc))
        shared["recorder"].add(FEEDBACK, record)
        return JSONResponse({"recorded": True, "request_id": record["request_id"]}, status_code=202)

    @app.get("/stats")
    def stats(since: int | None = None, version: str | None = None) -> JSONResponse:
        recorder: Recorder = shared["recorder"]
        if since is None or version is None:
            return JSONResponse({"seq": recorder.seq})
        return JSONResponse(recorder.stats(since, version))

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        route = table.current()
        answer = await to_live(route, "GET", "/readyz")
        if isinstance(answer, JSONResponse) or answer.status != 200:
            return (
                answer
                if isinstance(answer, JSONResponse)
                else _error(503, f"the live slot is not ready: {answer.body.decode()}")
            )
        return JSONResponse({"status": "ready", "live": str(route.live), "version": route.live_version})

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(generate_latest(metrics), media_type=CONTENT_TYPE_LATEST)

    def refused(request: Request) -> JSONResponse | None:
        if token is None:
            return _error(
                503, f"admin endpoints are disabled: set {config.serving.admin_token_env} in the router's environment"
            )
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), token.encode()):
            return _error(
                401,
                "admin endpoints need the header 'Authorization: Bearer <token>' with the router's token",
                {"WWW-Authenticate": "Bearer"},
            )
        return None

    async def admin(request: Request, action) -> JSONResponse:  # noqa: ANN001 - a callable of the parsed body
        denied = refused(request)
        if denied:
            return denied
        raw = await request.body()
        try:
            body = json.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            done = await run_in_threadpool(action, body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the body is not valid JSON")
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))
        except PipelineError as exc:
            return _error(409, str(exc))
        log.info("admin: %s", done)
        return JSONResponse({"done": done, "state": _public(read_state(config).to_dict())})

    def by(body: dict[str, Any]) -> dict[str, Any]:
        return {"by": str(body.get("by") or "router-admin"), "reason": body.get("reason")}

    @app.post("/admin/switch")
    async def admin_switch(request: Request) -> JSONResponse:
        def act(body: dict[str, Any]) -> str:
            state = switch_standby(config, run_id="router-admin", **by(body))
            return f"switched: live is now {state.live} = {state.live_record.version}"

        return await admin(request, act)

    @app.post("/admin/rollback")
    async def admin_rollback(request: Request) -> JSONResponse:
        return await admin(request, lambda body: rollback(config, "router-admin", **by(body))[1])

    @app.post("/admin/canary")
    async def admin_canary(request: Request) -> JSONResponse:
        def act(body: dict[str, Any]) -> str:
            weight = body.get("weight")
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight < 1:
                raise ValueError(
                    f"'weight' must be a number from 0 (no canary) up to, not including, 1; got {weight!r}"
                )
            set_routing(config, canary_weight=float(weight))
            return f"canary weight {weight:.0%} to the standby slot"

        return await admin(request, act)

    @app.post("/admin/shadow")
    async def admin_shadow(request: Request) -> JSONResponse:
        def act(body: dict[str, Any]) -> str:
            enabled = body.get("enabled")
            if not isinstance(enabled, bool):
                raise ValueError(f"'enabled' must be true or false; got {enabled!r}")
            set_routing(config, shadow=enabled)
            return f"shadow {'on' if enabled else 'off'}"

        return await admin(request, act)

    @app.get("/admin/state")
    def admin_state(request: Request) -> JSONResponse:
        return refused(request) or JSONResponse(_public(read_state(config).to_dict()))

    return app


def _public(state: dict[str, Any]) -> dict[str, Any]:
    """The state without its history's older entries (the last ten are enough for an answer)."""
    return {**state, "history": state["history"][-10:]}


def _feedback(body: Any, config: Config) -> dict[str, Any]:
    """A feedback record from ``{"request_id": ..., "label": ..., "row": 0}``; the label is a declared label value."""
    if not isinstance(body, dict):
        raise ValueError('expected {"request_id": "...", "label": ..., "row": 0}')
    unknown = sorted(set(body) - {"request_id", "label", "row"})
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}: the fields are request_id, label and row")
    request_id, label, row = body.get("request_id"), body.get("label"), body.get("row", 0)
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 200:
        raise ValueError(f"'request_id' must be the X-Request-ID of a predict answer (a string); got {request_id!r}")
    spec = config.data_schema.label
    if spec.values is not None and label not in spec.values:
        raise ValueError(f"'label' must be one of {spec.values}; got {label!r}")
    if not isinstance(label, str) or not label:
        raise ValueError(f"'label' must be a label value as the data has it, e.g. {spec.positive!r}; got {label!r}")
    if isinstance(row, bool) or not isinstance(row, int) or row < 0:
        raise ValueError(f"'row' must be the row's index in the request (0 or more); got {row!r}")
    return {"request_id": request_id, "row": row, "label": label, "time": datetime.now(UTC).isoformat()}


def run_router(config: Config, host: str | None = None, port: int | None = None) -> None:
    """Run the router until interrupted."""
    run_app(create_app(config), host or config.serving.host, port or config.serving.router_port, log_level="warning")
