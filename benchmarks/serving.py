"""Serving latency side by side: the live model called in-process, through its model server, and through
the router in front of it (HTTP, as clients call it).

Needs a live model (``make demo`` leaves one). It starts the local serving stack (or uses the running one).
For batch 1 and 32 it sends the same raw rows all three ways and prints p50/p99 latency and throughput, the
overhead of server and router + server over the in-process call (target: router + server adds at most
2 ms at p50, batch 1), and p50/p99 at a paced 100 requests/s through the router (target: p99 < 25 ms).

    .venv/bin/python benchmarks/serving.py [--config configs/adult.yaml] [--requests 500]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from pipelines.core.config import DEFAULT_CONFIG, load_config
from pipelines.core.deployment_state import read_state
from pipelines.deployment.endpoints import running
from pipelines.deployment.registry import registered_model
from pipelines.model.scoring import load_scorer, predict_with
from pipelines.serving.stack import down, up

REPO = Path(__file__).resolve().parents[1]


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.array(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def timed(client: httpx.Client, url: str, bodies: list[str]) -> tuple[list[float], float]:
    """Latency of each request posted in turn, and the throughput (requests/s)."""
    seconds, began = [], time.perf_counter()
    for body in bodies:
        start = time.perf_counter()
        client.post(url, content=body, headers={"content-type": "application/json"}).raise_for_status()
        seconds.append(time.perf_counter() - start)
    return seconds, len(bodies) / (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    config = load_config(args.config)
    state = read_state(config)
    if not state.live_record:
        raise SystemExit("no live model: run `make demo` (or promote one) first")
    schema, record = config.data_schema, state.live_record
    features = [f.name for f in schema.model_features]
    rows = pd.read_parquet(record.reference_uri)[features].head(1000)
    serve = load_scorer(record.model_uri)
    started = running(config) is None
    stack = up(config, args.config)
    path = f"/v1/models/{registered_model(config)}:predict"
    targets = {"server": stack[str(state.live)]["url"] + path, "router": stack["router"]["url"] + path}
    results = {}
    try:
        with httpx.Client(timeout=30) as client:
            for batch in (1, 32):
                chunks = [rows.iloc[(i * batch) % 900 : (i * batch) % 900 + batch] for i in range(args.requests)]
                bodies = [json.dumps({"instances": json.loads(c.to_json(orient="records"))}) for c in chunks]
                predict_with(serve, chunks[0], schema)  # warm
                local = []
                for chunk in chunks:
                    start = time.perf_counter()
                    predict_with(serve, chunk, schema)
                    local.append(time.perf_counter() - start)
                for url in targets.values():
                    timed(client, url, bodies[:50])  # warm the connections
                results[batch] = {"in-process": (local, None)} | {
                    name: timed(client, url, bodies) for name, url in targets.items()
                }
            paced, body = [], json.dumps({"instances": json.loads(rows.head(1).to_json(orient="records"))})
            start_all = time.perf_counter()
            for i in range(1000):  # 100 requests/s for 10 s, batch 1, through the router
                time.sleep(max(0.0, start_all + i / 100 - time.perf_counter()))
                paced.append(timed(client, targets["router"], [body])[0][0])
    finally:
        if started:
            down(config)

    print(f"{'batch':>5} {'path':>11} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7} {'+p50 ms':>8} {'ratio p50':>9}")
    for batch, ways in results.items():
        base = percentiles(ways["in-process"][0])[0]
        for name, (seconds, throughput) in ways.items():
            p50, p99 = percentiles(seconds)
            rate = f"{throughput:>7.0f}" if throughput else f"{'':>7}"
            print(f"{batch:>5} {name:>11} {p50:>8.2f} {p99:>8.2f} {rate} {p50 - base:>8.2f} {p50 / base:>9.2f}")
    router_over_server = percentiles(results[1]["router"][0])[0] - percentiles(results[1]["server"][0])[0]
    print(
        f"router alone adds {router_over_server:.2f} ms at p50, batch 1 (router + server target: +2 ms over in-process)"
    )
    p50, p99 = percentiles(paced)
    print(f"router at a paced 100 requests/s, batch 1: p50 {p50:.2f} ms, p99 {p99:.2f} ms (target p99 < 25 ms)")


if __name__ == "__main__":
    main()
