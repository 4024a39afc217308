"""Running the DAGs with `dag.test()` on use cases registered in a tmp configs folder.

A run names its use case, never a path, and the choice of use cases is fixed when the DAG file is parsed:
so a test registers its configs first (``register``), points ``CT_CONFIGS_DIR`` at them and only then parses
the DAGs (``parse``).
"""

from __future__ import annotations

import json
import threading
from datetime import date
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pendulum
from conftest import REPO


def register(configs: Path, name: str, config_path: Path) -> Path:
    """Copy a config (its paths are absolute) into the configs folder as the use case ``name``."""
    configs.mkdir(parents=True, exist_ok=True)
    target = configs / f"{name}.yaml"
    target.write_text(Path(config_path).read_text())
    return target


def parse(monkeypatch, configs: Path, dag_id: str = "training_pipeline"):
    """The DAG as Airflow parses it with ``configs`` as the registered use cases."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CT_CONFIGS_DIR", str(configs))
    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}, bag.import_errors
    return bag.dags[dag_id]


def run(dag, ds: date, **conf):
    """One real ``dag.test()`` run for logical date ``ds``; returns the run and its task states."""
    dagrun = dag.test(logical_date=pendulum.datetime(ds.year, ds.month, ds.day, tz="UTC"), run_conf=conf)
    return dagrun, {ti.task_id: ti.state for ti in dagrun.get_task_instances()}


class Webhook:
    """A real HTTP endpoint on 127.0.0.1 that keeps every JSON body posted to it (an alert receiver)."""

    def __init__(self):
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
