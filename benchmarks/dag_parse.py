"""DAG parse time: the shipped DAG file against the same file with a heavy import at the top.

The scheduler's DAG processor re-parses every file every 30 s, so parse time is paid forever. Each
variant is timed in fresh interpreters (after `airflow.sdk`, which every DAG pays), side by side in
one run; the median of --repeat runs is reported with its ratio to the shipped file.

    .venv/bin/python benchmarks/dag_parse.py --repeat 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

DAG = Path(__file__).resolve().parents[1] / "dags" / "training_pipeline.py"
ANCHOR = "import pendulum\n"
VARIANTS = {
    "shipped": "",
    "+ TriggerDagRunOperator import": (
        "from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator\n"
    ),
    "+ pipelines.features.transform import": "import pipelines.features.transform\n",
    "+ tensorflow_transform import": "import tensorflow_transform\n",
}
PROBE = r"""
import importlib.util, sys, time
import airflow.sdk
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(time.perf_counter() - start)
"""


def parse_seconds(path: Path) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    source = DAG.read_text()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in VARIANTS.items():
            path = Path(tmp) / "dags" / f"{len(results)}.py"
            path.parent.mkdir(exist_ok=True)
            path.write_text(source.replace(ANCHOR, ANCHOR + extra, 1))
            parse_seconds(path)  # warm the OS file cache
            results[name] = statistics.median(parse_seconds(path) for _ in range(args.repeat))
    base = results["shipped"]
    print(f"{'variant':<34} {'median parse (s)':>16} {'x shipped':>10}")
    for name, seconds in results.items():
        print(f"{name:<34} {seconds:>16.3f} {seconds / base:>10.1f}")
    print(json.dumps({"repeat": args.repeat, "seconds": results}))


if __name__ == "__main__":
    main()
