"""Airflow itself, not `dag.test()`: a real scheduler (LocalExecutor, `airflow standalone` on 127.0.0.1).

New data reaches the training DAG through the ingestion DAG's asset event and is trained and promoted; then
`airflow backfill create` replays two earlier dates, and the live model and both slots stay exactly as they
were. Alerts from real failures (and the run deadline) reach a webhook on 127.0.0.1. Last, a retraining request
posted to the REST API as an event on `ct://retrain` (what the monitoring DAG emits) starts a training run for
the event's use case and date, and that date's run card gives the request's reason as what started the run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path

import pytest
from conftest import REPO, SMALL, write_config
from dag_runs import Webhook

from pipelines.core.config import load_config
from pipelines.core.deployment_state import Slot, read_state
from pipelines.data.demo import write_partitions

AIRFLOW = str(Path(sys.executable).parent / "airflow")
NEWEST = date(2026, 1, 6)
BACKFILL = ("2026-01-03", "2026-01-04")
DAG = "training_pipeline"
RETRAIN_URI = "ct://retrain/"  # retrain_asset() as Airflow stores it (normalized, with the trailing slash)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Airflow:
    """`airflow standalone` (scheduler, DAG processor, triggerer, api-server) in its own home and session."""

    def __init__(self, home: Path, env: dict[str, str]):
        self.home, self.env = home, env
        self.token: str | None = None  # the REST API's, on first use
        self.log = open(home / "standalone.log", "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [AIRFLOW, "standalone"], env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def query(self, sql: str, *args) -> list[tuple]:
        db = self.home / "airflow.db"
        if not db.exists():
            return []
        with sqlite3.connect(db, timeout=30) as conn:
            try:
                return conn.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):  # not migrated yet
                    return []
                raise

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """An ``airflow`` CLI call, tried again when the scheduler holds SQLite's write lock (the embedded
        database takes one writer at a time; a loaded machine can outlast its busy timeout)."""
        for _ in range(3):
            done = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=120)
            if done.returncode == 0 or "database is locked" not in done.stderr:
                return done
            time.sleep(2)
        return done

    def wait(self, what: str, condition, timeout: float):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"airflow standalone exited while waiting for {what}: {self.tail()}")
            result = condition()
            if result:
                return result
            time.sleep(3)
        pytest.fail(f"timed out waiting for {what}; runs: {self.runs()}\n{self.tail()}")

    def runs(self, dag_id: str = "training_pipeline") -> list[dict]:
        rows = self.query(
            "SELECT run_id, run_type, state, logical_date, conf FROM dag_run WHERE dag_id = ? ORDER BY id", dag_id
        )
        return [dict(zip(("run_id", "run_type", "state", "logical_date", "conf"), r, strict=True)) for r in rows]

    def task_states(self, run_id: str) -> dict[str, str]:
        rows = self.query("SELECT task_id, state FROM task_instance WHERE run_id = ?", run_id)
        return dict(rows)

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        """One call of Airflow's public REST API, as the standalone's admin (SimpleAuthManager, its generated
        password in the home folder)."""
        base = self.env["AIRFLOW__API__BASE_URL"]
        if self.token is None:
            passwords = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
            login = {"username": "admin", "password": passwords["admin"]}
            self.token = self._call("POST", base + "/auth/token", login)["access_token"]
        return self._call(method, base + path, body, {"Authorization": f"Bearer {self.token}"})

    @staticmethod
    def _call(method: str, url: str, body: dict | None, headers: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            pytest.fail(f"{method} {url} answered HTTP {exc.code}: {exc.read().decode(errors='replace')[:2000]}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.env["AIRFLOW__API__BASE_URL"] + "/api/v2/monitor/health", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def tail(self) -> str:
        self.log.flush()
        return (self.home / "standalone.log").read_text(errors="replace")[-4000:]

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


@pytest.fixture
def case(tmp_path, adult_frame):
    """One registered use case, `case`, with six days of Adult data up to NEWEST."""
    configs = tmp_path / "configs"
    configs.mkdir()
    path = configs / "case.yaml"
    path.write_text(write_config(tmp_path, SMALL).read_text())
    config = load_config(path)
    write_partitions(adult_frame, config, date(2026, 1, 1), rows_per_day=800, days=6)
    return config


@pytest.fixture
def airflow(tmp_path, case):
    home = tmp_path / "airflow-home"
    (home / "plugins").mkdir(parents=True)
    port = free_port()
    webhook = Webhook()
    env = {
        **os.environ,
        "PATH": f"{Path(AIRFLOW).parent}{os.pathsep}{os.environ['PATH']}",  # standalone starts `airflow ...`
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "CT_CONFIGS_DIR": str(case.artifact_root.parent / "configs"),
        "CT_RUN_DEADLINE_MINUTES": "1",
        "AIRFLOW_CONN_CT_ALERTS": webhook.url,
    }
    server = Airflow(home, env)
    server.webhook = webhook
    yield server
    server.stop()
    webhook.close()
    shutil.rmtree(home / "logs", ignore_errors=True)


@pytest.mark.slow
def test_new_data_trains_and_promotes_then_a_backfill_leaves_the_live_model_and_both_slots_alone(airflow, case):
    # 1. Ingestion (hourly; triggered here rather than waiting for the hour) sees the newest partition and emits
    # ct://case/raw with its date; that event starts a training run.
    # The DAGs start paused, so nothing runs before the api-server (which workers report to) is up.
    parsed = "SELECT DISTINCT dag_id FROM serialized_dag"
    airflow.wait("the DAGs to be parsed", lambda: {(DAG,), ("ingestion",)} <= set(airflow.query(parsed)), 300)
    airflow.wait("the api-server", airflow.healthy, 300)
    for command in (("dags", "unpause", DAG), ("dags", "unpause", "ingestion"), ("dags", "trigger", "ingestion")):
        done = airflow.cli(*command)
        assert done.returncode == 0, done.stderr[-3000:]

    def asset_run():
        done = [r for r in airflow.runs() if r["run_type"] == "asset_triggered" and r["state"] in ("success", "failed")]
        return done[0] if done else None

    run = airflow.wait("the asset-triggered training run", asset_run, timeout=600)
    events = airflow.query(
        "SELECT asset_event.extra FROM asset_event JOIN asset ON asset.id = asset_event.asset_id WHERE uri = ?",
        "ct://case/raw",
    )
    assert [json.loads(e[0]) for e in events] == [
        {"use_case": "case", "ds": NEWEST.isoformat(), "partition": str(case.data.partition(NEWEST))}
    ]
    states = airflow.task_states(run["run_id"])
    assert run["state"] == "success", (states, airflow.tail())
    assert states["promote_blue_green"] == "success", states
    before = read_state(case)
    assert before.live is Slot.BLUE and before.slots[Slot.BLUE].ds == NEWEST.isoformat(), "D came from the event"

    # 2. Airflow's own backfill over two earlier dates, with the scheduler running.
    created = airflow.cli(
        "backfill", "create", "--dag-id", "training_pipeline", "--from-date", BACKFILL[0], "--to-date", BACKFILL[-1],
        "--dag-run-conf", json.dumps({"config": "case"}),
    )  # fmt: skip
    assert created.returncode == 0, created.stderr[-3000:]

    def backfill_done():
        runs = [r for r in airflow.runs() if r["run_type"] == "backfill"]
        finished = len(runs) == len(BACKFILL) and all(r["state"] in ("success", "failed") for r in runs)
        return runs if finished else None

    backfills = airflow.wait("the backfill runs", backfill_done, timeout=900)
    assert sorted(r["logical_date"][:10] for r in backfills) == list(BACKFILL)
    for r in backfills:
        states = airflow.task_states(r["run_id"])
        assert r["state"] == "success", (states, airflow.tail())
        assert states["gate_candidate"] == "success" and states["promote_blue_green"] == "skipped", states
        gate = json.loads((case.artifact_root / "runs" / r["logical_date"][:10] / "gate" / "decision.json").read_text())
        assert gate["attempt"] == 1  # gated and recorded
    after = read_state(case)
    assert after == before, "a backfill does not switch the live model, nor touch either slot"

    # 3. Alerts. Unpaused, the daily schedule's own run (yesterday: no data for this use case) failed loudly ...
    failed = [a for a in airflow.webhook.received if a["kind"] == "task_failed"]
    assert failed and all(a["task_id"] == "check_params" and a["use_case"] == "case" for a in failed), failed
    assert (
        "nothing to process" in failed[0]["reason"]
        and "partitions exist from 2026-01-01 to 2026-01-06" in (failed[0]["reason"])
    )
    assert failed[0]["log_url"].startswith(airflow.env["AIRFLOW__API__BASE_URL"] + "/dags/training_pipeline/runs/")
    # ... and runs longer than the deadline (1 minute here) raised deadline alerts from the triggerer.
    late = [a for a in airflow.webhook.received if a["kind"] == "deadline_missed"]
    assert late and all(a["dag_id"] == "training_pipeline" for a in late), airflow.webhook.received

    # 4. A retraining request, as the monitoring DAG emits it: an event on ct://retrain (here through the REST
    # API) starts a training run for the event's use case and D, and D's run card says why the run was started.
    # D is a backfilled date, older than the live model's: the re-run holds its candidate and replaces D's card.
    ds = BACKFILL[-1]
    reason = "monitoring alarm: accuracy 0.61 below its floor 0.80 (e2e retraining request)"
    [(asset_id,)] = airflow.query("SELECT id FROM asset WHERE uri = ?", RETRAIN_URI)
    extra = {"use_case": "case", "ds": ds, "reason": reason, "interval": f"{ds}T00:00:00+00:00..{ds}T01:00:00+00:00"}
    earlier = {r["run_id"] for r in airflow.runs()}
    event = airflow.api("POST", "/api/v2/assets/events", {"asset_id": asset_id, "extra": extra})
    assert event["extra"] == {**extra, "from_rest_api": True}, event

    def retrain_run():
        new = [r for r in airflow.runs() if r["run_id"] not in earlier and r["run_type"] == "asset_triggered"]
        return new[0] if new and new[0]["state"] in ("success", "failed") else None

    run = airflow.wait("the training run started by the retraining event", retrain_run, timeout=600)
    states = airflow.task_states(run["run_id"])
    assert run["state"] == "success", (states, airflow.tail())
    assert states["hold_candidate"] == states["write_run_card"] == "success", states
    card = json.loads((case.artifact_root / "runs" / ds / "card" / "run_card.json").read_text())
    assert card["data"]["run_id"] == [run["run_id"]], "every stage of the event's D was (re)made by this run"
    assert card["data"]["trigger"] == reason, card["data"]["trigger"]
    assert read_state(case) == before, "a retrain of an older D keeps the live model trained on newer data"
