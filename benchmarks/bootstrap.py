"""Paired bootstrap intervals: the evaluation's batched NumPy version against a scikit-learn loop.

The gate decides on confidence bounds, so every evaluation computes intervals for five metrics,
overall and for every slice, for the candidate, the live model and their paired difference. Both
implementations below use the SAME resample indices, so their intervals must agree; the table shows
the time of each and the ratio.

    .venv/bin/python benchmarks/bootstrap.py --rows 2000 --samples 300
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from pipelines.core.config import METRICS, load_config
from pipelines.evaluation.metrics import THRESHOLD, batched_metrics

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "adult.yaml"


def sklearn_loop(y: np.ndarray, p: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    for rows in idx:
        yb, pb = y[rows], p[rows]
        pred = pb >= THRESHOLD
        out["accuracy"].append(skm.accuracy_score(yb, pred))
        out["precision"].append(skm.precision_score(yb, pred, zero_division=0))
        out["recall"].append(skm.recall_score(yb, pred, zero_division=0))
        out["f1"].append(skm.f1_score(yb, pred, zero_division=0))
        out["roc_auc"].append(skm.roc_auc_score(yb, pb))
    return {m: np.array(v) for m, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=load_config(CONFIG).thresholds.gate.bootstrap_samples)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    y = (rng.random(args.rows) < 0.25).astype(int)
    candidate = np.clip(0.6 * y + rng.normal(0.2, 0.25, args.rows), 0, 1)
    live = np.clip(0.5 * y + rng.normal(0.25, 0.25, args.rows), 0, 1)
    idx = rng.integers(0, args.rows, size=(args.samples, args.rows))

    models = {"candidate": candidate, "live": live}
    implementations = {
        "batched numpy (shipped)": lambda p: batched_metrics(y[idx], p[idx]),
        "scikit-learn loop": lambda p: sklearn_loop(y, p, idx),
    }
    timings, results = {}, {}
    for name, fn in implementations.items():
        start = time.perf_counter()
        results[name] = {who: fn(p) for who, p in models.items()}
        timings[name] = time.perf_counter() - start

    shipped, loop = results["batched numpy (shipped)"], results["scikit-learn loop"]
    worst = max(np.max(np.abs(shipped[w][m] - loop[w][m])) for w in shipped for m in METRICS)
    base = timings["batched numpy (shipped)"]
    print(f"{args.rows} rows x {args.samples} resamples x 2 models x {len(METRICS)} metrics")
    print(f"{'implementation':<26} {'seconds':>8} {'x shipped':>10}")
    for name, seconds in timings.items():
        print(f"{name:<26} {seconds:>8.3f} {seconds / base:>10.1f}")
    print(f"largest difference between the two on any resample and metric: {worst:.2e}")


if __name__ == "__main__":
    main()
