"""Closing the loop: retraining requested by alarms (with a cooldown and a daily cap) and the post-promotion watch.

**Retraining.** An interval whose alarms ask for it (drift, performance) records a request in
``<artifact_root>/monitoring/retrain_requests.json``, unless one was made less than
``monitoring.retrain_cooldown_hours`` ago or ``monitoring.max_retrains_per_day`` were made in the last
24 hours, so alarms cannot loop. The request is keyed by its interval: a re-run of the same hour finds
it and does not ask again. The monitoring DAG turns a new request into an Airflow Asset event; whether
the retrained candidate goes live stays the gate's decision.

**Post-promotion watch.** For ``monitoring.watch_hours`` after a promotion, the new live version's
answers are compared with the previous version's (still loaded in the other slot) over the same
length of time before the switch: error rate, and accuracy on the rows whose labels have arrived
(a two-proportion interval at ``thresholds.gate.confidence``). When the new version is worse beyond
``monitoring.max_performance_drop``, or fails more than ``monitoring.max_error_rate``, it is rolled
back and the history says why.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any

from pipelines.core.artifacts import file_lock, read_json, write_json_atomic
from pipelines.core.config import Config
from pipelines.core.deployment_state import EventKind, read_state
from pipelines.core.prediction_log import FEEDBACK, PREDICTIONS, prediction_rows, read_records
from pipelines.core.storage import lease
from pipelines.deployment.rollback import rollback

log = logging.getLogger(__name__)


def ledger_path(config: Config) -> Path:
    """The retraining requests made so far."""
    return config.artifact_root / "monitoring" / "retrain_requests.json"


def request_retrain(
    config: Config, interval: str, reasons: list[str], ds: str, now: datetime
) -> tuple[dict[str, Any] | None, str]:
    """Record a retraining request for ``interval`` unless the cooldown or the daily cap forbids it.

    Returns:
        (the request, "new") when one is made; (the earlier request, "exists") when this interval
        already made one; (None, why) when the cooldown or the cap holds it back.
    """
    settings, path = config.monitoring, ledger_path(config)
    with file_lock(path.with_suffix(".lock")), lease(path.with_suffix(".lock"), refresh=path):
        requests = read_json(path)["requests"] if path.exists() else []
        for earlier in requests:
            if earlier["interval"] == interval:
                return earlier, "exists"
        made = [datetime.fromisoformat(r["at"]) for r in requests]
        recent = [at for at in made if now - at < timedelta(hours=24)]
        if made and now - max(made) < timedelta(hours=settings.retrain_cooldown_hours):
            return None, (
                f"cooldown: the last retraining request was at {max(made).isoformat()}, less than "
                f"retrain_cooldown_hours {settings.retrain_cooldown_hours:g} ago"
            )
        if len(recent) >= settings.max_retrains_per_day:
            return None, f"daily cap: {len(recent)} retraining request(s) in the last 24 hours (max_retrains_per_day)"
        request = {"at": now.isoformat(), "interval": interval, "ds": ds, "reasons": reasons}
        write_json_atomic(path, {"requests": [*requests, request]})
    log.warning("retraining requested for %s: %s", ds, "; ".join(reasons))
    return request, "new"


def _served(config: Config, version: str, start: datetime, end: datetime, labels: dict) -> dict[str, Any]:
    """What ``version`` answered clients in [start, end): requests, failures, accuracy on labelled rows."""
    rows = [
        r
        for r in prediction_rows(read_records(config, PREDICTIONS, start, end)[0])
        if r["version"] == version and r["role"] in ("live", "canary")
    ]
    label = config.data_schema.label
    keys = [(r, (r["request_id"], r["row"])) for r in rows]
    if label.is_multiclass:  # ``class`` is the most probable class's id, in the order of the label's values
        ids = {value: i for i, value in enumerate(label.classes)}
        judged = [r["class"] == ids.get(labels[key]) for r, key in keys if key in labels]
    else:
        judged = [r["class"] == int(labels[key] == label.positive) for r, key in keys if key in labels]
    failed = sum(r["status"] != 200 for r in rows)
    return {
        "version": version,
        "rows": len(rows),
        "failed": failed,
        "error_rate": failed / len(rows) if rows else None,
        "labelled": len(judged),
        "accuracy": sum(judged) / len(judged) if judged else None,
    }


def watch(config: Config, now: datetime) -> dict[str, Any] | None:
    """Judge the version promoted within the last ``watch_hours``; roll it back on a breach.

    Returns:
        None when no promotion is being watched; else what was compared, the verdict and, on a
        breach, the rollback's line.
    """
    settings = config.monitoring
    state = read_state(config)
    switches = [e for e in state.history if e.action in (EventKind.PROMOTE, EventKind.ROLLBACK)]
    if not switches or switches[-1].action is not EventKind.PROMOTE or switches[-1].source is None:
        return None
    event = switches[-1]
    at, span = datetime.fromisoformat(event.at), timedelta(hours=settings.watch_hours)
    previous = state.slots[event.source]
    if now - at > span or previous is None or state.live_record.version != event.version:
        return None
    labels = {
        (r["request_id"], r["row"]): r["label"]
        for r in read_records(config, FEEDBACK, at - span, now + timedelta(seconds=1))[0]
    }
    new = _served(config, event.version, at, now, labels)
    old = _served(config, previous.version, at - span, at, labels)
    result = {"promoted_at": event.at, "new": new, "previous": old, "breach": None}
    breach = _breach(config, new, old)
    if breach:
        line = rollback(config, "monitoring-watch", by="monitoring", reason=f"post-promotion watch: {breach}")[1]
        result.update(breach=breach, rollback=line)
        log.warning("post-promotion watch rolled back %s: %s", event.version, breach)
    return result


def _breach(config: Config, new: dict[str, Any], old: dict[str, Any]) -> str | None:
    settings = config.monitoring
    if new["rows"] >= settings.min_requests and new["error_rate"] > settings.max_error_rate:
        rate = f"{new['error_rate']:.1%} > max_error_rate {settings.max_error_rate:.1%}"
        return f"{new['failed']} of {new['rows']} answers of {new['version']} failed ({rate})"
    if min(new["labelled"], old["labelled"]) < settings.watch_min_labelled_rows:
        return None
    p1, n1, p0, n0 = new["accuracy"], new["labelled"], old["accuracy"], old["labelled"]
    z = NormalDist().inv_cdf(0.5 + config.thresholds.gate.confidence / 2)
    upper = p1 - p0 + z * math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)
    if upper < -settings.max_performance_drop:
        return (
            f"accuracy of {new['version']} on {n1} labelled rows is {p1:.3f} against {p0:.3f} for {old['version']} "
            f"on {n0} before the switch; the upper bound of the difference, {upper:+.3f}, is below "
            f"-max_performance_drop {settings.max_performance_drop:g}"
        )
    return None
