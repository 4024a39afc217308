"""Evidently's DataDriftPreset, with its default settings, on many current partitions in one process.

Runs inside Evidently's own venv (``.venv-evidently``, from ``requirements-evidently.txt``), so it
imports nothing from ``pipelines``. ``drift_quality.py`` starts it once per worker, each with its
share of the partitions, so the import cost is paid once per process:

    .venv-evidently/bin/python benchmarks/evidently_drift.py DIR CURRENT

DIR holds ``reference.parquet`` and ``columns.json`` (``{"numerical": [...], "categorical": [...]}``);
CURRENT is a parquet file of partitions told apart by the ``_partition`` column. The result goes to
stdout as JSON: Evidently's version, and per partition the columns Evidently flagged, its dataset
drift flag, the method it chose per column and the seconds the report took.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently import __version__ as evidently_version
from evidently.presets import DataDriftPreset

PARTITION = "_partition"


def drift_of(report_dict: dict[str, Any]) -> dict[str, Any]:
    """Evidently's own verdicts out of a snapshot: its failed per-column and dataset-share tests."""
    drifted, methods, dataset_drift, share = [], {}, False, 0.0
    for metric in report_dict["metrics"]:
        if metric["config"]["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    for test in report_dict["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith("ValueDrift"):
            methods[params["column"]] = params["method"]
            if test["status"] == "FAIL":
                drifted.append(params["column"])
        elif params["type"].endswith("DriftedColumnsCount"):
            dataset_drift = test["status"] == "FAIL"
    return {"drifted_features": sorted(drifted), "dataset_drift": dataset_drift, "share": share, "methods": methods}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("current", type=Path)
    args = parser.parse_args()
    columns = json.loads((args.folder / "columns.json").read_text())
    definition = DataDefinition(numerical_columns=columns["numerical"], categorical_columns=columns["categorical"])
    reference = Dataset.from_pandas(pd.read_parquet(args.folder / "reference.parquet"), data_definition=definition)
    current = pd.read_parquet(args.current)
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, part in current.groupby(PARTITION, sort=False):
            data = Dataset.from_pandas(part.drop(columns=PARTITION).reset_index(drop=True), data_definition=definition)
            start = time.perf_counter()
            snapshot = Report([DataDriftPreset()], include_tests=True).run(data, reference)
            results[name] = {**drift_of(snapshot.dict()), "seconds": time.perf_counter() - start}
    json.dump({"version": evidently_version, "partitions": results}, sys.stdout)


if __name__ == "__main__":
    main()
