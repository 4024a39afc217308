"""The Models plugin's package: extra links, the FastAPI app and its pages (see ``ml_models_plugin.py``)."""

from __future__ import annotations

DAG_ID = "training_pipeline"  # the DAG whose tasks get links, and whose permissions guard the pages
URL_PREFIX = "/ml-models"  # where the api-server mounts the app
