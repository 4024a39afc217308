"""Demo traffic: raw rows of a run's test split sent to a model server, as a client would send them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pandas as pd

from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName
from pipelines.core.outputs import TransformOutput, require
from pipelines.deployment.registry import registered_model


def sample_rows(ctx: RunContext, n: int) -> list[dict[str, Any]]:
    """The first ``n`` raw test rows of D's run, features only, JSON-ready (missing values as null)."""
    transformed = require(TransformOutput(ctx.stage_dir(StageName.TRANSFORM)))
    features = [f.name for f in ctx.config.data_schema.model_features]
    return json.loads(pd.read_parquet(transformed.test_raw)[features].head(n).to_json(orient="records"))


def wait_ready(url: str, seconds: float) -> None:
    """Wait until the server at ``url`` says it is ready (model loaded and warmed up).

    Raises:
        TimeoutError: not ready within ``seconds``; the message carries the server's last answer.
    """
    deadline, last = time.monotonic() + seconds, "no answer"
    while True:
        try:
            response = httpx.get(f"{url.rstrip('/')}/readyz", timeout=2)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.TransportError as exc:
            last = str(exc)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {seconds:.0f} s: {last}")
        time.sleep(0.25)


def send(ctx: RunContext, url: str, rows: int, batch: int = 1) -> list[tuple[dict[str, Any], httpx.Response]]:
    """Post ``rows`` test rows of D's run to ``url``'s predict endpoint, ``batch`` rows a request.

    Returns:
        Each request body with its response.
    """
    path = f"{url.rstrip('/')}/v1/models/{registered_model(ctx.config)}:predict"
    records = sample_rows(ctx, rows)
    exchanges = []
    with httpx.Client(timeout=30) as client:
        for i in range(0, len(records), batch):
            body = {"instances": records[i : i + batch]}
            exchanges.append((body, client.post(path, json=body)))
    return exchanges


def replay(
    url: str,
    model: str,
    frame: pd.DataFrame,
    features: list[str],
    label: str | None = None,
    prefix: str = "replay",
    stop: Callable[[], bool] | None = None,
) -> dict[str, int]:
    """Send each row of ``frame`` as one request (its ``X-Request-ID`` is ``prefix-i``), then, if ``label``
    names the label column, post every row's true label to ``/feedback`` (labels arrive after the answers).

    Returns:
        Counts: rows sent, answers by status class, labels recorded.
    """
    rows = json.loads(frame[features].to_json(orient="records"))
    counts = {"sent": 0, "ok": 0, "failed": 0, "labels": 0}
    with httpx.Client(base_url=url.rstrip("/"), timeout=30) as client:
        for i, row in enumerate(rows):
            if stop and stop():
                break
            answer = client.post(
                f"/v1/models/{model}:predict", json={"instances": [row]}, headers={"X-Request-ID": f"{prefix}-{i}"}
            )
            counts["sent"] += 1
            counts["ok" if answer.status_code == 200 else "failed"] += 1
        if label:
            for i, value in enumerate(frame[label].head(counts["sent"]).tolist()):
                response = client.post("/feedback", json={"request_id": f"{prefix}-{i}", "row": 0, "label": value})
                counts["labels"] += response.status_code == 202
    return counts
