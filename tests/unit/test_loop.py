"""Closing the loop: retraining requests with a cooldown, a daily cap and one per interval; the post-promotion
watch rolls back a version that answers worse than the one before it, and leaves a good one alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import write_config

from pipelines.core.config import load_config
from pipelines.core.deployment_state import EventKind, SlotRecord, read_state
from pipelines.core.prediction_log import FEEDBACK, PREDICTIONS, LogWriter
from pipelines.deployment import controller
from pipelines.deployment.models import install
from pipelines.monitoring.loop import request_retrain, watch

NOW = datetime(2026, 2, 1, 12, tzinfo=UTC)


@pytest.fixture
def config(tmp_path):
    overrides = {"monitoring": {"retrain_cooldown_hours": 6, "max_retrains_per_day": 2, "watch_min_labelled_rows": 100}}
    return load_config(write_config(tmp_path, overrides))


def test_requests_respect_the_cooldown_the_daily_cap_and_are_made_once_per_interval(config):
    first, how = request_retrain(config, "h1", ["drift in age"], "2026-02-01", NOW)
    again, how_again = request_retrain(config, "h1", ["drift in age"], "2026-02-01", NOW + timedelta(hours=9))
    cooled, why = request_retrain(config, "h2", ["drift"], "2026-02-01", NOW + timedelta(hours=5))
    second, _ = request_retrain(config, "h3", ["drift"], "2026-02-01", NOW + timedelta(hours=7))
    capped, why_cap = request_retrain(config, "h4", ["drift"], "2026-02-01", NOW + timedelta(hours=14))
    later, _ = request_retrain(config, "h5", ["drift"], "2026-02-02", NOW + timedelta(hours=25))

    assert how == "new" and first["reasons"] == ["drift in age"]
    assert how_again == "exists" and again == first  # a re-run of the hour asks nothing new
    assert cooled is None and why.startswith("cooldown")
    assert second is not None and capped is None and why_cap.startswith("daily cap: 2")
    assert later is not None  # a day later the cap has room again


def deliver(config, tmp_path, version: str, expected: str | None) -> None:
    model, reference = tmp_path / f"m-{version}", tmp_path / f"r-{version}.parquet"
    model.mkdir()
    reference.write_text("rows")
    record = install(config, SlotRecord(version, str(model), str(reference), "2026-01-03", "r"), model, reference)
    controller.deliver(config, record, expected, run_id=f"run-{version}")


def traffic(config, version: str, start: datetime, n: int, accuracy: float, prefix: str) -> None:
    """``n`` answered rows of ``version`` from ``start``, and labels making ``accuracy`` of them right."""
    answers, labels = [], []
    for i in range(n):
        at = (start + timedelta(seconds=i)).isoformat()
        answers.append(
            {
                "request_id": f"{prefix}{i}",
                "time": at,
                "role": "live",
                "slot": "blue",
                "version": version,
                "status": 200,
                "latency_ms": 2.0,
                "request": {"instances": [{"age": 40}]},
                "response": {"predictions": [{"probability": 0.9, "class": 1}]},
            }
        )
        right = i < accuracy * n
        labels.append({"request_id": f"{prefix}{i}", "row": 0, "label": ">50K" if right else "<=50K", "time": at})
    LogWriter(config, PREDICTIONS).write(answers)
    LogWriter(config, FEEDBACK).write(labels)


@pytest.mark.parametrize(("new_accuracy", "rolled_back"), [(0.55, True), (0.84, False)])
def test_the_watch_rolls_back_a_worse_new_version_only(config, tmp_path, new_accuracy, rolled_back):
    deliver(config, tmp_path, "v1", None)
    deliver(config, tmp_path, "v2", "v1")
    switched = datetime.fromisoformat(read_state(config).history[-1].at)
    traffic(config, "v1", switched - timedelta(minutes=30), 300, 0.85, "old")
    traffic(config, "v2", switched + timedelta(seconds=1), 300, new_accuracy, "new")

    result = watch(config, switched + timedelta(minutes=10))

    state = read_state(config)
    assert result["new"]["labelled"] == 300 and result["previous"]["accuracy"] == pytest.approx(0.85)
    if rolled_back:
        assert "accuracy of v2" in result["breach"] and state.live_record.version == "v1"
        assert state.history[-1].action is EventKind.ROLLBACK and state.history[-1].by == "monitoring"
        assert watch(config, switched + timedelta(minutes=20)) is None  # nothing promoted to watch any more
    else:
        assert result["breach"] is None and state.live_record.version == "v2"
    assert watch(config, switched + timedelta(hours=25)) is None  # past watch_hours
