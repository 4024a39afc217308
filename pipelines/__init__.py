"""Continuous training and gated delivery: the stage library (no Airflow import here).

The library's environment settings live here and only here: every entry point (the CLI, Airflow
tasks, tests) imports this package before any stage imports TensorFlow or Great Expectations. The
TFT layer only works inside a tf_keras model, so `TF_USE_LEGACY_KERAS` must be set before TensorFlow
loads; GX must not try to send usage statistics from an offline worker; MLflow's download progress
bars only clutter task logs. Values already set win.
Airflow's own settings (AIRFLOW_HOME, ...) are the Makefile's, since only the Airflow CLI needs them.
Libraries that log a line per request or per registered function at INFO are quieted here too, for the CLI and
the Airflow task logs alike (``python -m pipelines -v`` turns them back on).
"""

from __future__ import annotations

import logging
import os

ENVIRONMENT = {
    "TF_USE_LEGACY_KERAS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "GX_ANALYTICS_ENABLED": "False",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # no progress bars in task logs
}
for _key, _value in ENVIRONMENT.items():
    os.environ.setdefault(_key, _value)

CHATTY_LOGGERS = ("httpx", "great_expectations._docs_decorators", "apache_beam.typehints.native_type_compatibility")
for _name in CHATTY_LOGGERS:
    logging.getLogger(_name).setLevel(logging.WARNING)

__version__ = "0.1.0"
