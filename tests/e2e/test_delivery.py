"""Blue-green delivery through real processes on 127.0.0.1: the router and both slots' model servers
(`stack up`), a load generator running while the controller promotes, rolls back and ramps a canary,
the prediction and feedback logs, admin auth, and kill -9 of the router and of the controller."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import yaml
from conftest import REPO, SMALL, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.core.config import load_config
from pipelines.core.context import RunContext
from pipelines.core.contracts import StageName
from pipelines.core.deployment_state import EventKind, read_state, state_path
from pipelines.core.prediction_log import FEEDBACK, PREDICTIONS, read_records
from pipelines.data.demo import write_partitions
from pipelines.deployment.controller import DeliveryFailed, promote_version
from pipelines.deployment.endpoints import stack_file
from pipelines.runner import BY_NAME, STAGES, run_pipeline, run_stage
from pipelines.serving.processes import free_port
from pipelines.serving.stack import down, up

NAME = "adult-income"
TOKEN = "test-admin-token-42"


@dataclass
class Load:
    """A bounded load generator: ``clients`` concurrent clients posting one test row each, until stopped."""

    url: str
    rows: list[dict]
    clients: int = 16
    limit: int = 6000
    answers: list[tuple[float, float, int, str]] = field(default_factory=list)  # sent, received, status, version
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Load:
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self.thread.start()
        return self

    def wait_for(self, n: int, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while len(self.answers) < n and time.monotonic() < deadline:
            time.sleep(0.05)

    def finish(self, more: int = 300) -> list[tuple[float, float, int, str]]:
        self.wait_for(len(self.answers) + more)
        self.stop.set()
        self.thread.join(timeout=60)
        return self.answers

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(self._client(client, i) for i in range(self.clients)))

    async def _client(self, client: httpx.AsyncClient, i: int) -> None:
        n = i
        while not self.stop.is_set() and len(self.answers) < self.limit:
            body = {"instances": [self.rows[n % len(self.rows)]]}
            sent = time.time()
            try:
                response = await client.post(f"{self.url}/v1/models/{NAME}:predict", json=body)
                status, version = response.status_code, response.headers.get("X-Model-Version", "")
            except httpx.TransportError:
                status, version = 0, ""
            self.answers.append((sent, time.time(), status, version))
            n += self.clients


@pytest.fixture(scope="module")
def stack(tmp_path_factory, adult_frame):
    """Two versions: v1 live in blue (promoted with no servers running), v2 trained and gated (forced);
    then the local stack up with free ports and an admin token."""
    tmp = tmp_path_factory.mktemp("delivery")
    ports = {"router_port": free_port(), "blue_port": free_port(), "green_port": free_port()}
    overrides = {**SMALL, "serving": {**ports, "log_flush_seconds": 0.2}, "deployment": {"skew_rows": 40}}
    config_path = write_config(tmp, overrides)
    config = load_config(config_path)
    write_partitions(adult_frame, config, date_(2026, 1, 1), 800, days=5)
    run_pipeline(RunContext.create(config, "2026-01-03"))
    v1 = read_state(config).live_record.version
    ctx2 = RunContext.create(config, "2026-01-04", force=True, force_reason="test: a second version")
    for stage in STAGES:
        if stage.name is not StageName.PROMOTE:
            run_stage(ctx2, stage)
    os.environ[config.serving.admin_token_env] = TOKEN
    try:
        record = up(config, config_path)
        yield config_path, config, ctx2, v1, record
    finally:
        down(config)
        os.environ.pop(config.serving.admin_token_env, None)


def date_(*args):
    from datetime import date

    return date(*args)


def test_rows(config, ctx, n=200) -> list[dict]:
    import pandas as pd

    from pipelines.core.outputs import TransformOutput

    features = [f.name for f in config.data_schema.model_features]
    frame = pd.read_parquet(TransformOutput(ctx.stage_dir(StageName.TRANSFORM)).test_raw, columns=features)
    return json.loads(frame.head(n).to_json(orient="records"))


test_rows.__test__ = False  # a helper, not a test


def check_switch(answers, at: datetime, old: str, new: str) -> None:
    """Zero failed requests; each answer from one of the two versions: old before the switch, new after it."""
    switch = at.timestamp()
    assert [a for a in answers if a[2] != 200] == []
    assert {a[3] for a in answers} == {old, new}
    assert all(a[3] == old for a in answers if a[1] < switch), "an answer from the new version before the switch"
    # The router sees the state file on its next request; allow the time between the event's stamp and its rename.
    assert all(a[3] == new for a in answers if a[0] > switch + 0.2), "an answer from the old version after the switch"


def test_promotion_under_load_switches_without_a_failed_request(stack):
    config_path, config, ctx2, v1, record = stack
    load = Load(record["router"]["url"], test_rows(config, ctx2)).start()
    load.wait_for(300)

    run_stage(ctx2, BY_NAME[StageName.PROMOTE])
    answers = load.finish()

    state = read_state(config)
    event = state.history[-1]
    assert event.action is EventKind.PROMOTE and state.live_record.version != v1 and state.live.value == "green"
    check_switch(answers, datetime.fromisoformat(event.at), v1, state.live_record.version)
    # The skew check ran against the green server: online equals offline on the run's test rows.
    skew = event.checks["skew"]
    assert skew["rows"] == 40 and skew["max_abs_diff"] <= config.deployment.skew_tolerance
    assert event.checks["ready_seconds"] >= 0 and event.reason
    assert state.pending is None and state.slots[state.live.other].version == v1  # the old slot stays up


def test_admin_calls_need_the_token_and_change_nothing_without_it(stack):
    _, config, _, _, record = stack
    router, before = record["router"]["url"], state_path(config).read_bytes()

    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for path, body in (("/admin/rollback", {}), ("/admin/switch", {}), ("/admin/canary", {"weight": 0.5})):
            response = httpx.post(router + path, json=body, headers=headers)
            assert response.status_code == 401, (path, headers, response.text)
            assert "Authorization: Bearer" in response.json()["error"] and TOKEN not in response.text
    assert httpx.get(router + "/admin/state").status_code == 401
    assert state_path(config).read_bytes() == before
    assert TOKEN not in (config.artifact_root / "stack" / "logs" / "router.log").read_text()


def test_rollback_under_load_through_the_router(stack):
    _, config, _, v1, record = stack
    router = record["router"]["url"]
    v2 = read_state(config).live_record.version
    load = Load(router, test_rows(config, stack[2])).start()
    load.wait_for(300)

    response = httpx.post(
        router + "/admin/rollback",
        json={"reason": "test rollback"},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=120,  # the first admin call imports MLflow in the router (aliases follow the switch)
    )
    answers = load.finish()

    assert response.status_code == 200, response.text
    state = read_state(config)
    event = state.history[-1]
    assert event.action is EventKind.ROLLBACK and state.live_record.version == v1 and event.reason == "test rollback"
    check_switch(answers, datetime.fromisoformat(event.at), v2, v1)
    bad = httpx.post(router + "/admin/canary", json={"weight": 2}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad.status_code == 400 and "'weight' must be a number" in bad.json()["error"]


def test_a_canary_ramp_under_load_then_a_breach_rolls_back(stack):
    config_path, config, ctx2, v1, record = stack
    assert read_state(config).live_record.version == v1  # after the rollback above; v2 waits in green
    v2 = read_state(config).slots[read_state(config).live.other].version
    ramp = config.model_copy(
        update={
            "deployment": config.deployment.model_copy(
                update={"canary_steps": [0.2, 0.5], "canary_min_requests": 30, "canary_step_seconds": 60}
            )
        }
    )
    load = Load(record["router"]["url"], test_rows(config, ctx2)).start()
    load.wait_for(200)

    state = promote_version(ramp, v2, "test", by="tester", reason="canary test")
    answers = load.finish()

    event = state.history[-1]
    assert event.action is EventKind.PROMOTE and state.live_record.version == v2
    assert [s["weight"] for s in event.checks["canary"]] == [0.2, 0.5]
    assert all(s["requests"] >= 30 and s["errors"] == 0 for s in event.checks["canary"])
    assert [a for a in answers if a[2] != 200] == [] and {a[3] for a in answers} == {v1, v2}
    during = [a for a in answers if a[1] < datetime.fromisoformat(event.at).timestamp()]
    assert 0 < sum(a[3] == v2 for a in during) < len(during)  # the ramp split traffic before the switch

    # A canary whose latency breaks the budget is rolled back: live unchanged, the revert recorded.
    strict = ramp.model_copy(update={"deployment": ramp.deployment.model_copy(update={"latency_budget_ms": 0.001})})
    httpx.post(record["router"]["url"] + "/admin/rollback", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    load = Load(record["router"]["url"], test_rows(config, ctx2)).start()
    load.wait_for(100)
    with pytest.raises(DeliveryFailed, match="latency"):
        promote_version(strict, v2, "test", by="tester")
    answers = load.finish(100)
    after = read_state(config)
    assert after.live_record.version == v1 and after.pending is None and after.routing.canary_weight == 0
    assert after.history[-1].action is EventKind.REVERT and "latency" in after.history[-1].reason
    assert [a for a in answers if a[2] != 200] == []


def test_predictions_and_feedback_are_logged(stack):
    _, config, ctx2, v1, record = stack
    router = record["router"]["url"]
    row = test_rows(config, ctx2, 2)
    start = datetime.now(UTC) - timedelta(seconds=1)

    answer = httpx.post(
        f"{router}/v1/models/{NAME}:predict", json={"instances": row}, headers={"X-Request-ID": "req-1"}
    )
    feedback = httpx.post(f"{router}/feedback", json={"request_id": "req-1", "row": 1, "label": ">50K"})
    wrong = httpx.post(f"{router}/feedback", json={"request_id": "req-1", "label": "rich"})
    time.sleep(1.0)  # one flush period and more

    assert answer.status_code == 200 and answer.headers["X-Request-ID"] == "req-1"
    assert feedback.status_code == 202
    assert wrong.status_code == 400 and "'label' must be one of" in wrong.json()["error"]
    end = datetime.now(UTC) + timedelta(seconds=1)
    [logged] = [r for r in read_records(config, PREDICTIONS, start, end)[0] if r["request_id"] == "req-1"]
    assert logged["request"] == {"instances": row} and logged["response"] == answer.json()
    assert logged["slot"] == answer.headers["X-Slot"] and logged["version"] == answer.headers["X-Model-Version"]
    assert logged["role"] == "live" and logged["status"] == 200 and logged["latency_ms"] > 0
    [label] = read_records(config, FEEDBACK, start, end)[0]
    assert label["request_id"] == "req-1" and label["row"] == 1 and label["label"] == ">50K"


def test_kill_9_of_the_router_mid_switch_leaves_one_version_live(stack):
    config_path, config, ctx2, _, record = stack
    router_pid = record["router"]["pid"]
    before = read_state(config)

    def call_switch() -> None:
        with contextlib.suppress(httpx.TransportError):  # the router dies under it: what matters is the state
            httpx.post(record["router"]["url"] + "/admin/switch", headers={"Authorization": f"Bearer {TOKEN}"})

    switch = threading.Thread(target=call_switch)
    switch.start()
    os.kill(router_pid, signal.SIGKILL)
    switch.join(timeout=30)

    state = read_state(config)  # the switch either happened or not: one slot live, and readable
    assert state.live in (before.live, before.live.other) and state.pending is None
    restarted = up(config, config_path)
    assert restarted["router"]["pid"] != router_pid and restarted["blue"]["pid"] == record["blue"]["pid"]
    answer = httpx.post(
        restarted["router"]["url"] + f"/v1/models/{NAME}:predict", json={"instances": test_rows(config, ctx2, 1)}
    )
    assert answer.status_code == 200 and answer.headers["X-Model-Version"] == read_state(config).live_record.version


def test_kill_9_of_the_controller_mid_canary_then_abort(stack, tmp_path):
    config_path, config, ctx2, _, record = stack
    state = read_state(config)
    live, standby = state.live_record.version, state.slots[state.live.other].version
    # The same use case with a slow canary and a short lease, for a controller in its own process.
    slow = tmp_path / "slow.yaml"
    raw = yaml.safe_load(config_path.read_text())
    raw["deployment"].update(canary_steps=[0.5], canary_min_requests=10**6, canary_step_seconds=600, lease_seconds=3)
    slow.write_text(yaml.safe_dump(raw))
    load = Load(record["router"]["url"], test_rows(config, ctx2), clients=4).start()
    controller = subprocess.Popen(
        [sys.executable, "-m", "pipelines", "deploy", "promote", "--config", str(slow), "--version", standby],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and read_state(config).routing.canary_weight == 0:
        time.sleep(0.1)
    assert read_state(config).routing.canary_weight == 0.5, controller.stderr.read().decode()[-2000:]
    controller.send_signal(signal.SIGKILL)
    controller.wait()

    time.sleep(3.5)  # the lease lapses: the router stops sending the canary share
    load.answers.clear()
    load.wait_for(200)
    answers = load.finish(0)
    pending = read_state(config)
    assert pending.pending is not None and pending.live_record.version == live
    assert {a[3] for a in answers} == {live} and all(a[2] == 200 for a in answers)

    done = subprocess.run(
        [sys.executable, "-m", "pipelines", "deploy", "abort", "--config", str(config_path), "--reason", "test"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    after = read_state(config)
    assert after.pending is None and after.live_record.version == live
    assert after.slots[after.live.other].version == standby and after.history[-1].action is EventKind.REVERT


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    ),
    path=st.sampled_from([f"/v1/models/{NAME}:predict", "/feedback", "/admin/canary", "/v1/models/x:predict"]),
)
def test_the_router_never_answers_5xx_to_any_json(stack, body, path):
    response = httpx.post(stack[4]["router"]["url"] + path, json=body, timeout=30)
    assert response.status_code < 500, response.text


def test_stack_record_names_every_process(stack):
    _, config, _, _, _ = stack
    record = json.loads(stack_file(config).read_text())
    assert set(record) == {"router", "blue", "green"} and all(
        r["url"].startswith("http://127.0.0.1:") for r in record.values()
    )
