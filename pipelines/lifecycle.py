"""The whole lifecycle on one machine: train, serve, watch, drift, retrain, hold, roll back.

``make demo-lifecycle`` (``python -m pipelines lifecycle``) runs, through real Airflow runs
(``airflow dags test`` of the training, monitoring and deployment DAGs), the serving stack and
replayed traffic with delayed labels:

1. v1 is trained on the first two weeks and promoted to blue; the stack comes up behind the router.
2. Held-out days are replayed through the router, labels follow; monitoring finds nothing to act on.
3. Days whose age distribution has shifted are replayed; monitoring raises the drift alarm and asks
   for retraining (the ``ct://retrain`` asset event; with a scheduler running the training DAG starts
   on it, here the demo starts that run itself with the event's date and reason).
4. v2 is trained on the recent window, passes the gate and goes live in green through the skew
   check, a shadow period and a canary ramp, while traffic keeps flowing.
5. A deliberately degraded v3 (a use case with a crippled model) is held by the gate.
6. The degraded model is forced live (an operator override, no canary); traffic with labels follows;
   the post-promotion watch in the next monitoring run rolls it back to v2.

It prints a timeline of what happened and why, and the paths of the run cards and monitoring
reports. Everything lives under its work folder (its own configs, data, artifacts and stack), so it
never touches the main demo. This is a runner: it calls Airflow's CLI, the library's stages do the work.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from pipelines.core.config import Config, load_config
from pipelines.core.contracts import PipelineError
from pipelines.core.deployment_state import read_state
from pipelines.data.demo import DriftSpec, read_adult_wheel, write_partitions
from pipelines.deployment.registry import registered_model
from pipelines.monitoring.loop import ledger_path
from pipelines.serving.processes import free_port
from pipelines.serving.stack import down, up
from pipelines.serving.traffic import replay

START = date(2026, 1, 1)
V1_DATE = date(2026, 1, 14)
DRIFT = DriftSpec(date(2026, 1, 22), date(2026, 1, 28), "covariate", "age")
DAYS_BEFORE, DAYS_AFTER = 30, 34  # partitions at first, and once later days have arrived


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


@dataclass
class Lifecycle:
    """One run of the scenario in ``workdir``; ``small`` shrinks windows and replays for the test suite."""

    base: Path
    workdir: Path
    wheel: Path
    small: bool = False
    timeline: list[tuple[str, str]] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        self.configs = self.workdir / "configs"
        self.logs = self.workdir / "logs"
        self.replay_rows = 200 if self.small else 800

    # -- set-up -------------------------------------------------------------------------------------------
    def write_configs(self) -> Config:
        """The demo's two use cases: ``lifecycle`` and ``lifecycle_degraded`` (same data, artifacts and stack)."""
        raw = yaml.safe_load(self.base.read_text())
        ports = {"router_port": free_port(), "blue_port": free_port(), "green_port": free_port()}
        common = {
            "data": {"root": str(self.workdir / "partitions")},
            "artifact_root": str(self.workdir / "artifacts"),
            "serving": {**ports, "log_flush_seconds": 0.5},
            "deployment": {
                "skew_rows": 50,
                "shadow_seconds": 30,
                "shadow_min_requests": 30,
                "min_agreement": 0.8,
                "canary_steps": [0.25, 0.5],
                "canary_min_requests": 15,
                "canary_step_seconds": 60,
                # Training, three servers, the router and the replay share this machine's cores: latency
                # is checked (the delivery tests gate on it), but not at a production budget here.
                "latency_budget_ms": 2000,
            },
            # Fairness is reported, not gated, in this demo: v2 is judged on quality and slices.
            "thresholds": {"gate": {"warn_only": ["fairness"]}},
            "monitoring": {"min_requests": 20, "min_labelled_rows": 100, "watch_min_labelled_rows": 100},
        }
        if raw.get("expectations"):
            common["expectations"] = str((self.base.parent / raw["expectations"]).resolve())
        if self.small:
            common = _merge(
                common,
                {
                    "data": {"window_days": 3},
                    "thresholds": {
                        "validation": {"min_rows": 500},
                        "gate": {
                            "min_test_rows": 200,
                            "min_slice_size": 50,
                            "bootstrap_samples": 100,
                            "max_regression": 0.05,
                        },
                        "drift": {"min_rows": 100},
                    },
                    "training": {"epochs": 3},
                },
            )
        degraded = {
            "training": {"epochs": 1, "hidden_units": [1], "embedding_dim": 1, "learning_rate": 0.00005},
            "thresholds": {"gate": {"max_retrains": 0}},
            "deployment": {"shadow_seconds": 0, "canary_steps": []},  # the forced promotion skips them
        }
        self.configs.mkdir(parents=True, exist_ok=True)
        lifecycle = _merge(raw, common)
        (self.configs / "lifecycle.yaml").write_text(yaml.safe_dump(lifecycle, sort_keys=False))
        (self.configs / "lifecycle_degraded.yaml").write_text(
            yaml.safe_dump(_merge(lifecycle, degraded), sort_keys=False)
        )
        return load_config(self.configs / "lifecycle.yaml")

    def note(self, what: str) -> None:
        """One line of the timeline, printed as it happens."""
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        self.timeline.append((stamp, what))
        print(f"{stamp}  {what}", flush=True)

    # -- Airflow ------------------------------------------------------------------------------------------
    def airflow(self, dag: str, day: date | datetime, **conf: Any) -> bool:
        """``airflow dags test`` one run; True if it succeeded (its log is kept under logs/)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{len(list(self.logs.iterdir())):02d}-{dag}-{str(day)[:10]}.log"
        env = {**os.environ, "CT_CONFIGS_DIR": str(self.configs)}
        command = [
            str(Path(sys.executable).parent / "airflow"),
            "dags",
            "test",
            dag,
            str(day)[:19],
            "-c",
            json.dumps(conf),
        ]
        with log.open("w") as out:
            done = subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)
        text = log.read_text(errors="replace")
        ok = done.returncode == 0 and "state=failed" not in text and "DagRunState.FAILED" not in text
        return ok

    # -- traffic ------------------------------------------------------------------------------------------
    def rows_of(self, config: Config, days: list[date], rows: int | None = None) -> pd.DataFrame:
        """The first ``rows`` (default ``replay_rows`` a day) rows of the partitions of ``days``."""
        frame = pd.concat([pd.read_csv(config.data.partition(d)) for d in days], ignore_index=True)
        return frame.head(rows or self.replay_rows * len(days))

    def send(
        self, config: Config, days: list[date], prefix: str, rows: int | None = None
    ) -> tuple[datetime, datetime, dict[str, int]]:
        """Replay the rows of ``days`` through the router, then their labels; returns the interval it took."""
        frame = self.rows_of(config, days, rows)
        features = [f.name for f in config.data_schema.model_features]
        start = datetime.now(UTC)
        counts = replay(self.router, registered_model(config), frame, features, config.data_schema.label.name, prefix)
        time.sleep(config.serving.log_flush_seconds * 3)  # the router's log is written in batches
        return start, datetime.now(UTC), counts

    def background(self, config: Config, days: list[date]) -> tuple[threading.Event, threading.Thread]:
        """Traffic in a loop (no labels) until the returned event is set: clients keep calling during a delivery."""
        stop = threading.Event()
        frame = self.rows_of(config, days)
        features = [f.name for f in config.data_schema.model_features]

        def loop() -> None:
            n = 0
            while not stop.is_set():
                replay(self.router, registered_model(config), frame, features, prefix=f"bg{n}", stop=stop.is_set)
                n += 1

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return stop, thread

    def monitor(self, start: datetime, end: datetime) -> dict[str, Any]:
        """A monitoring DAG run over [start, end); returns its report (alarms included)."""
        ok = self.airflow("monitoring", end, config="lifecycle", start=start.isoformat(), end=end.isoformat())
        folder = self.config.artifact_root / "monitoring"
        latest = max(folder.glob("*/report.json"), key=lambda p: p.stat().st_mtime)
        self.reports.append(str(latest.with_suffix(".html")))
        report = json.loads(latest.read_text())
        if not ok:
            raise PipelineError(f"the monitoring run failed: see the newest log in {self.logs}")
        return report

    # -- the scenario -------------------------------------------------------------------------------------
    def run(self) -> list[tuple[str, str]]:
        """The whole scenario; raises if a step does not end as it should."""
        config = self.config = self.write_configs()
        frame = read_adult_wheel(self.wheel)
        write_partitions(frame, config, START, 800, days=DAYS_BEFORE, drifts=[DRIFT])
        self.note(
            f"data: {DAYS_BEFORE} daily partitions of Adult from {START}; "
            f"age shifted older in {DRIFT.start}..{DRIFT.end}"
        )
        try:
            self._scenario(config, frame)
        finally:
            down(config)
        return self.timeline

    def _scenario(self, config: Config, frame: pd.DataFrame) -> None:
        day = timedelta(days=1)
        if not self.airflow("training_pipeline", V1_DATE, config="lifecycle", date=V1_DATE.isoformat()):
            raise PipelineError(f"training v1 failed: see {self.logs}")
        v1 = read_state(config).live_record
        self.note(f"v1 {v1.version} trained on the window ending {V1_DATE}, gate PROMOTE, live in blue")
        self.router = up(config, self.configs / "lifecycle.yaml")["router"]["url"]
        self.note(f"serving stack up: router {self.router}, blue and green model servers")

        start, end, counts = self.send(config, [V1_DATE + day, V1_DATE + 2 * day], "steady")
        report = self.monitor(start, end)
        self.note(
            f"steady traffic: {counts['ok']} answers, {counts['labels']} labels; monitoring: {self._alarms(report)}"
        )

        start, end, counts = self.send(config, [DRIFT.start + day, DRIFT.start + 2 * day], "drifted")
        report = self.monitor(start, end)
        self.note(f"drifted traffic: {counts['ok']} answers; monitoring: {self._alarms(report)}")
        requests = json.loads(ledger_path(config).read_text())["requests"] if ledger_path(config).exists() else []
        if not requests:
            raise PipelineError("the drift alarm did not request retraining")
        request = requests[-1]
        self.note(f"retraining requested for D={request['ds']} (event on ct://retrain): {request['reasons'][0][:140]}")

        stop, thread = self.background(config, [V1_DATE + 3 * day])
        try:
            ok = self.airflow(
                "training_pipeline",
                date.fromisoformat(request["ds"]),
                config="lifecycle",
                date=request["ds"],
                trigger_reason="monitoring alarm: " + "; ".join(request["reasons"]),
            )
        finally:
            stop.set()
            thread.join(timeout=60)
        state = read_state(config)
        if not ok or state.live_record.version == v1.version:
            raise PipelineError(f"v2 did not go live: see {self.logs}")
        v2, event = state.live_record, state.history[-1]
        steps = ", ".join(f"{s['weight']:.0%}: {s['requests']} answers" for s in event.checks.get("canary", []))
        shadow, skew = event.checks.get("shadow", {}), event.checks["skew"]["max_abs_diff"]
        self.note(
            f"v2 {v2.version} gate PROMOTE -> {state.live}: skew max |diff| {skew:.1e}, "
            f"shadow agreement {shadow.get('agreement', 0):.1%} on {shadow.get('compared')} requests, canary {steps}"
        )

        write_partitions(frame, config, START, 800, days=DAYS_AFTER, drifts=[DRIFT])  # later days arrive
        # Two days to train v3 on, and two days no model has seen to compare v2 with the forced v3.
        held_day, forced_day = START + (DAYS_AFTER - 4) * day, START + (DAYS_AFTER - 3) * day
        unseen = [START + (DAYS_AFTER - 2) * day, START + (DAYS_AFTER - 1) * day]
        self.airflow("training_pipeline", held_day, config="lifecycle_degraded", date=held_day.isoformat())
        decision = json.loads((config.artifact_root / "runs" / str(held_day) / "gate" / "decision.json").read_text())
        action = decision["action"]
        if action == "PROMOTE" or read_state(config).live_record.version != v2.version:
            raise PipelineError("the degraded candidate was not held")
        self.note(f"v3 (degraded) for D={held_day}: gate {action}: {decision['reasons'][0][:140]}")

        start, end, counts = self.send(config, unseen[:1], "v2", rows=2 * self.replay_rows)
        self.note(f"traffic on v2: {counts['ok']} answers, {counts['labels']} labels")
        reason = "demo: an operator forces a bad model live"
        self.airflow(
            "training_pipeline",
            forced_day,
            config="lifecycle_degraded",
            date=forced_day.isoformat(),
            force=True,
            force_reason=reason,
        )
        bad = read_state(config).live_record
        if bad.version == v2.version:
            raise PipelineError(f"the forced promotion did not go live: see {self.logs}")
        self.note(f"v3' {bad.version} forced live in {read_state(config).live} ({reason})")
        start, end, counts = self.send(config, unseen[1:], "forced", rows=2 * self.replay_rows)
        self.monitor(start, end)
        state = read_state(config)
        last = state.history[-1]
        if state.live_record.version != v2.version or last.by != "monitoring":
            raise PipelineError("the post-promotion watch did not roll the forced model back")
        self.note(f"post-promotion watch rolled back to v2 in {state.live}: {last.reason.partition(': ')[2]}")

    def _alarms(self, report: dict[str, Any]) -> str:
        found = report.get("alarms") or []
        loud = [a for a in found if a.get("severity") in ("warn", "critical")]
        if not loud:
            return "no warn or critical alarm"
        return "; ".join(f"[{a['severity']}] {a['message'][:110]}" for a in loud[:3])

    def summary(self) -> str:
        """The timeline, the run cards and the monitoring reports."""
        cards = sorted(str(p) for p in (self.config.artifact_root / "runs").glob("*/card/run_card.html"))
        lines = ["", "Timeline:", *(f"  {t}  {what}" for t, what in self.timeline), "", "Run cards:"]
        lines += [f"  {c}" for c in cards] + ["", "Monitoring reports:"] + [f"  {r}" for r in self.reports]
        lines += [
            "",
            f"Deployment history: python -m pipelines deploy status --config {self.configs / 'lifecycle.yaml'}",
        ]
        return "\n".join(lines)
