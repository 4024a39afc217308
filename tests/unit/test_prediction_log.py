"""The prediction log: hourly partitions, batches of whole lines, a torn last line skipped and never
spreading, rows flattened for monitoring in both TF Serving formats; the deployment controller without
servers (state-only switch, revert, a dead controller's delivery taken over) and routing leases."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from conftest import write_config

from pipelines.core.config import load_config
from pipelines.core.deployment_state import (
    DeployError,
    EventKind,
    Pending,
    Routing,
    Slot,
    SlotRecord,
    read_state,
    state_lock,
    write_state,
)
from pipelines.core.prediction_log import PREDICTIONS, LogWriter, hour_dir, prediction_rows, read_records
from pipelines.deployment import controller
from pipelines.deployment.models import install

T0 = datetime(2026, 1, 28, 13, 59, 59, tzinfo=UTC)


def record(i: int, at: datetime, **extra) -> dict:
    return {
        "request_id": f"r{i}",
        "time": at.isoformat(),
        "role": "live",
        "slot": "blue",
        "version": "v1",
        "status": 200,
        "latency_ms": 1.0,
        "request": {"instances": [{"age": 30 + i, "sex": "Male"}]},
        "response": {"predictions": [{"probability": 0.1 * i, "class": int(i > 5)}]},
        **extra,
    }


@pytest.fixture
def config(tmp_path):
    return load_config(write_config(tmp_path))


def test_records_land_in_their_hour_and_come_back_in_time_order(config):
    writer = LogWriter(config, PREDICTIONS)
    writer.write([record(1, T0 + timedelta(seconds=2)), record(0, T0)])  # 14:00:01 and 13:59:59

    assert (hour_dir(config, PREDICTIONS, T0) / writer.name).exists()
    assert (hour_dir(config, PREDICTIONS, T0 + timedelta(seconds=2)) / writer.name).exists()
    records, torn = read_records(config, PREDICTIONS, T0, T0 + timedelta(hours=1))
    assert [r["request_id"] for r in records] == ["r0", "r1"] and torn == 0
    later, _ = read_records(config, PREDICTIONS, T0 + timedelta(seconds=1), T0 + timedelta(hours=1))
    assert [r["request_id"] for r in later] == ["r1"]


def test_a_torn_last_line_is_skipped_and_the_next_writer_does_not_glue_onto_it(config):
    writer = LogWriter(config, PREDICTIONS)
    writer.write([record(0, T0), record(1, T0)])
    path = hour_dir(config, PREDICTIONS, T0) / writer.name
    with path.open("a") as handle:  # a crash in the middle of a write
        handle.write('{"request_id": "r2", "time": "2026-01-28T13:59:59+00:00", "sta')

    writer.write([record(3, T0)])  # the same file again (a pid reused after a restart)

    records, torn = read_records(config, PREDICTIONS, T0, T0 + timedelta(minutes=1))
    assert [r["request_id"] for r in records] == ["r0", "r1", "r3"] and torn == 1


def test_prediction_rows_flatten_both_formats_and_keep_failed_requests(config):
    columnar = record(
        7,
        T0,
        request={"inputs": {"age": [20, 40], "sex": ["Male", "Female"]}},
        response={"outputs": {"probability": [0.2, 0.9], "class": [0, 1]}},
    )
    failed = record(8, T0, status=400, response={"error": "instances[0].age: expected a number"})

    rows = prediction_rows([record(1, T0), columnar, failed])

    assert [(r["request_id"], r["row"]) for r in rows] == [("r1", 0), ("r7", 0), ("r7", 1), ("r8", None)]
    assert rows[2]["features"] == {"age": 40, "sex": "Female"} and rows[2]["probability"] == 0.9
    assert rows[2]["class"] == 1 and rows[3]["status"] == 400 and "features" not in rows[3]


def slot_record(config, tmp_path, version: str) -> SlotRecord:
    model, reference = tmp_path / f"m-{version}", tmp_path / f"r-{version}.parquet"
    model.mkdir()
    (model / "saved_model.pb").write_text(version)
    reference.write_text("rows")
    record = SlotRecord(version, str(model), str(reference), "2026-01-03", f"run-{version}")
    return install(config, record, model, reference)


def test_without_servers_a_delivery_switches_in_the_state_and_says_so(config, tmp_path):
    v1 = slot_record(config, tmp_path, "v1")

    state = controller.deliver(config, v1, None, run_id="r1", by="ann", reason="first")

    event = state.history[-1]
    assert state.live is Slot.BLUE and state.live_record.version == "v1" and state.pending is None
    assert event.by == "ann" and event.reason == "first" and "no serving stack" in event.checks["serving"]
    with pytest.raises(DeployError, match="live model changed from None to v1"):
        controller.deliver(config, slot_record(config, tmp_path, "v2"), None, run_id="r2")


def test_abort_puts_the_standby_slots_previous_model_back(config, tmp_path):
    # Each version is installed just before its delivery, as promotion does (a switch removes stray copies).
    controller.deliver(config, slot_record(config, tmp_path, "v1"), None, run_id="r1")
    controller.deliver(config, slot_record(config, tmp_path, "v2"), "v1", run_id="r2")  # green v2 live, blue v1
    controller.stage(config, slot_record(config, tmp_path, "v3"), "v2", run_id="r3")
    assert read_state(config).slots[Slot.BLUE].version == "v3"

    state = controller.abort(config, "operator said no")

    assert state.live_record.version == "v2" and state.slots[Slot.BLUE].version == "v1" and state.pending is None
    assert state.history[-1].action is EventKind.REVERT and state.history[-1].reason == "operator said no"
    assert state.live_stack == ["v1", "v2"]  # a revert is not a rollback
    with pytest.raises(DeployError, match="nothing to abort"):
        controller.abort(config, "again")


def test_a_dead_controllers_delivery_is_reverted_by_the_next_one_and_a_live_ones_is_refused(config, tmp_path):
    controller.deliver(config, slot_record(config, tmp_path, "v1"), None, run_id="r1")
    v2, v3 = slot_record(config, tmp_path, "v2"), slot_record(config, tmp_path, "v3")
    host = controller.owner().rpartition(":")[0]
    for owner, expect in ((f"{host}:{os.getppid()}", "in progress by"), (f"{host}:999999", None)):
        with state_lock(config):
            state = read_state(config)
            pending = Pending("v2", Slot.GREEN, "canary", "r2", "2026-01-04", T0.isoformat(), owner)
            write_state(
                config, state.__class__(state.live, {**state.slots, Slot.GREEN: v2}, state.history, pending=pending)
            )
        if expect:
            with pytest.raises(DeployError, match=expect):
                controller.stage(config, v3, "v1", run_id="r3")
        else:
            controller.stage(config, v3, "v1", run_id="r3")
    state = read_state(config)
    assert state.pending.version == "v3" and state.history[-1].action is EventKind.REVERT
    assert "controller" in state.history[-1].reason and "stopped" in state.history[-1].reason


def test_a_lapsed_lease_means_live_only():
    now = datetime(2026, 1, 28, tzinfo=UTC)
    leased = Routing(canary_weight=0.25, shadow=True, lease_until=(now + timedelta(seconds=5)).isoformat())

    assert leased.effective(now) == leased
    assert leased.effective(now + timedelta(seconds=6)) == Routing()
    assert Routing(canary_weight=0.1).effective(now + timedelta(days=365)).canary_weight == 0.1  # an operator's own
