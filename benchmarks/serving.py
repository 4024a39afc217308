"""Serving latency side by side: the live model called in-process, and through its model server (HTTP).

Needs a live model (``make demo`` leaves one). For batch 1 and 32 it sends the same raw rows both ways
and prints p50/p99 latency and throughput, the server's overhead over the in-process call, and p99 at
a paced 100 requests/s. (The router of the serving issue is not built yet; when it is, it gets a row.)

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
from pipelines.deployment.registry import registered_model
from pipelines.model.scoring import load_scorer, predict_with
from pipelines.serving.processes import start_server
from pipelines.serving.traffic import wait_ready

REPO = Path(__file__).resolve().parents[1]


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.array(seconds) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


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
    features = [f.name for f in schema.features]
    rows = pd.read_parquet(record.reference_uri)[features].head(1000)
    serve = load_scorer(record.model_uri)
    process, url = start_server(args.config, state.live)
    wait_ready(url, 120)
    results = {}
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for batch in (1, 32):
                chunks = [rows.iloc[(i * batch) % 900 : (i * batch) % 900 + batch] for i in range(args.requests)]
                bodies = [json.dumps({"instances": json.loads(c.to_json(orient="records"))}) for c in chunks]
                predict_with(serve, chunks[0], schema)  # warm
                local = []
                for chunk in chunks:
                    start = time.perf_counter()
                    predict_with(serve, chunk, schema)
                    local.append(time.perf_counter() - start)
                remote, began = [], time.perf_counter()
                for body in bodies:
                    start = time.perf_counter()
                    client.post(f"/v1/models/{registered_model(config)}:predict", content=body).raise_for_status()
                    remote.append(time.perf_counter() - start)
                results[batch] = (local, remote, args.requests / (time.perf_counter() - began))
            paced, body = [], json.dumps({"instances": json.loads(rows.head(1).to_json(orient="records"))})
            start_all = time.perf_counter()
            for i in range(1000):  # 100 requests/s for 10 s, batch 1
                due = start_all + i / 100
                time.sleep(max(0.0, due - time.perf_counter()))
                start = time.perf_counter()
                client.post(f"/v1/models/{registered_model(config)}:predict", content=body).raise_for_status()
                paced.append(time.perf_counter() - start)
    finally:
        process.terminate()
        process.wait(timeout=30)

    header = ("batch", "in-process p50/p99 ms", "server p50/p99 ms", "server req/s", "overhead p50 ms", "ratio p50")
    print("{:>5} {:>22} {:>18} {:>12} {:>15} {:>9}".format(*header))
    for batch, (local, remote, throughput) in results.items():
        (l50, l99), (r50, r99) = percentiles(local), percentiles(remote)
        latencies = f"{l50:>10.2f} / {l99:>8.2f} {r50:>8.2f} / {r99:>7.2f}"
        print(f"{batch:>5} {latencies} {throughput:>12.0f} {r50 - l50:>15.2f} {r50 / l50:>9.2f}")
    p50, p99 = percentiles(paced)
    print(f"server at a paced 100 requests/s, batch 1: p50 {p50:.2f} ms, p99 {p99:.2f} ms (target p99 < 25 ms)")


if __name__ == "__main__":
    main()
