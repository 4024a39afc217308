"""The deployment controller: a candidate goes live in steps, each checked against the servers that answer traffic.

``deliver`` is two-phase. **Stage**: under the state lock the candidate goes into the standby slot and
the state records a pending delivery (live is unchanged). Then, if a serving stack runs
(``endpoints.running``):

1. **ready**: the standby slot's server loads and warms up the candidate (its ``/readyz`` names it);
2. **skew**: the run's canned test rows, sent one by one, must get the probabilities the evaluation
   computed offline (``deployment.skew_tolerance``) with a p99 under ``deployment.latency_budget_ms``;
3. **shadow** (``deployment.shadow_seconds``): the router mirrors live traffic to the candidate, whose
   classes must agree with the live model's on ``deployment.min_agreement`` of the requests;
4. **canary** (``deployment.canary_steps``): the router sends each share of traffic to the candidate in
   turn; a step needs ``canary_min_requests`` answers, an error rate and a p99 within limits.

**Switch**: under the lock, if live is still what the candidate was gated against, ``live`` moves to
the standby slot with one atomic rename (the router picks it up on its next request). The old slot
keeps its model, so a rollback is one switch back. A failed step **reverts**: the standby slot gets
its previous model back, traffic goes to live only, and the history records why.

Shadow and canary are leased in the state: if the controller dies, the router stops splitting traffic
once the lease lapses, so exactly one version answers; ``resume`` re-runs the checks from the start
and switches, ``abort`` reverts. Without a serving stack the switch happens at once and servers
started later load it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np

from pipelines.core.artifacts import read_json, write_json_atomic
from pipelines.core.config import Config
from pipelines.core.deployment_state import (
    DeployError,
    DeploymentState,
    Event,
    EventKind,
    Pending,
    Routing,
    Slot,
    SlotRecord,
    read_state,
    state_lock,
    write_state,
)
from pipelines.deployment.endpoints import Endpoints, alive, running
from pipelines.deployment.models import RECORD, collect_garbage, installed_record, kept, version_dir
from pipelines.deployment.registry import aliases, registered_model, sync_aliases

log = logging.getLogger(__name__)

CANNED = "canned.json"  # beside a version's model: the rows and offline scores of its skew check


@dataclass(frozen=True)
class Canned:
    """Raw test rows (features only, JSON-ready) and the probabilities the evaluation computed for them."""

    rows: list[dict[str, Any]]
    scores: list[float]


class DeliveryFailed(DeployError):
    """A check before the switch failed; the delivery was reverted and live is unchanged."""


def owner() -> str:
    """Who runs a delivery: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _now() -> datetime:
    return datetime.now(UTC)


def save_canned(config: Config, version: str, canned: Canned) -> None:
    """Keep a version's skew-check rows beside its model, so a resumed delivery checks the same rows."""
    write_json_atomic(version_dir(config, version) / CANNED, asdict(canned))


def load_canned(config: Config, version: str) -> Canned | None:
    """The skew-check rows kept for ``version``, if any."""
    path = version_dir(config, version) / CANNED
    return Canned(**read_json(path)) if path.exists() else None


def deliver(
    config: Config,
    candidate: SlotRecord,
    expected_live: str | None,
    *,
    run_id: str,
    by: str | None = None,
    reason: str | None = None,
) -> DeploymentState:
    """Put ``candidate`` (already installed) live through the checks above; returns the state after the switch.

    Args:
        expected_live: the version the candidate was compared with; the switch is refused if another
            version went live meanwhile.

    Raises:
        DeliveryFailed: a check failed (the delivery was reverted, live unchanged).
        DeployError: live changed since the candidate was gated, or another controller is delivering.
    """
    if stage(config, candidate, expected_live, run_id=run_id, by=by, reason=reason) is None:
        return read_state(config)
    return resume(config)


def stage(
    config: Config,
    candidate: SlotRecord,
    expected_live: str | None,
    *,
    run_id: str,
    by: str | None = None,
    reason: str | None = None,
) -> Pending | None:
    """Put ``candidate`` into the standby slot and record the delivery as pending; live is unchanged.

    Returns:
        The pending delivery, or None if ``candidate`` is live already (an overlapping run got there first).
    """
    with state_lock(config):
        state = _take_over(config, read_state(config))
        current = state.live_record.version if state.live_record else None
        if current == candidate.version:
            return None
        if not (version_dir(config, candidate.version) / RECORD).exists():
            raise DeployError(f"version {candidate.version} is not installed (removed meanwhile?): re-run the date")
        if current != expected_live:
            raise DeployError(
                f"the live model changed from {expected_live} to {current} since this candidate was gated: "
                f"re-run the date to gate it against the model that is live now"
            )
        slot = state.live.other if state.live else Slot.BLUE
        pending = Pending(
            version=candidate.version,
            slot=slot,
            phase="staged",
            run_id=run_id,
            ds=candidate.ds,
            started=_now().isoformat(),
            owner=owner(),
            previous=state.slots[slot],
            by=by,
            reason=reason,
            checks={"expected_live": expected_live},
        )
        slots = {**state.slots, slot: candidate}
        write_state(config, replace(state, slots=slots, pending=pending, routing=Routing()))
    log.info("staged %s in the %s slot (live stays %s)", candidate.version, slot, current)
    return pending


def _take_over(config: Config, state: DeploymentState) -> DeploymentState:
    """``state`` with a pending delivery of a dead controller reverted; refuses if a live controller runs one."""
    pending = state.pending
    if pending is None:
        return state
    host, _, pid = pending.owner.rpartition(":")
    if pending.owner == owner() or (host == socket.gethostname() and not alive(int(pid))):
        log.warning("reverting the delivery of %s left by a stopped controller (%s)", pending.version, pending.owner)
        new = state.with_revert(_revert_event(state, f"its controller {pending.owner} stopped"))
        write_state(config, new)
        return new
    raise DeployError(
        f"a delivery of {pending.version} is in progress by {pending.owner} since {pending.started} "
        f"(phase {pending.phase}): wait for it, or stop it with `python -m pipelines deploy abort`"
    )


def _revert_event(state: DeploymentState, why: str) -> Event:
    pending = state.pending
    return Event(
        EventKind.REVERT,
        state.live,
        pending.slot,
        pending.version,
        pending.ds,
        pending.run_id,
        _now().isoformat(),
        by=pending.by,
        reason=why,
        checks=pending.checks,
    )


def resume(config: Config) -> DeploymentState:
    """Run the checks of the pending delivery (from the start) and switch; revert on a failed check.

    Raises:
        DeployError: nothing is pending.
        DeliveryFailed: a check failed; the delivery was reverted.
    """
    with state_lock(config):
        state = read_state(config)
        if state.pending is None:
            raise DeployError("no delivery is pending: nothing to resume")
        if state.pending.owner != owner():
            state = replace(state, pending=replace(state.pending, owner=owner()))
            write_state(config, state)
    pending = state.pending
    endpoints = running(config)
    if endpoints is None:
        checks = {"serving": "no serving stack running: switched in the state only (servers load it when they start)"}
        return _switch(config, pending, checks)
    try:
        checks = _check(config, endpoints, pending)
    except DeliveryFailed as exc:
        abort(config, str(exc))
        raise
    return _switch(config, pending, checks)


def _check(config: Config, endpoints: Endpoints, pending: Pending) -> dict[str, Any]:
    """Run the ready, skew, shadow and canary steps; returns what each measured.

    Raises:
        DeliveryFailed: naming the step and the figure that failed.
    """
    settings = config.deployment
    url = endpoints.slot(pending.slot)
    checks: dict[str, Any] = {"expected_live": pending.checks.get("expected_live")}
    checks["ready_seconds"] = _wait_ready(url, pending.version, settings.ready_timeout_seconds)
    _record_phase(config, pending, "ready", checks)
    canned = load_canned(config, pending.version)
    if canned and settings.skew_rows:
        checks["skew"] = _skew(config, url, canned)
        _record_phase(config, pending, "skew", checks)
    if settings.shadow_seconds:
        checks["shadow"] = _shadow(config, endpoints.router, pending)
        _record_phase(config, pending, "shadow", checks)
    for weight in settings.canary_steps:
        checks.setdefault("canary", []).append(_canary_step(config, endpoints.router, pending, weight))
        _record_phase(config, pending, "canary", checks)
    return checks


def _record_phase(config: Config, pending: Pending, phase: str, checks: dict[str, Any]) -> None:
    with state_lock(config):
        state = read_state(config)
        if state.pending and state.pending.version == pending.version:
            write_state(config, replace(state, pending=replace(state.pending, phase=phase, checks=dict(checks))))


def _wait_ready(url: str, version: str, seconds: float) -> float:
    """Seconds until the server at ``url`` is ready with ``version``."""
    start, last = time.monotonic(), "no answer"
    while time.monotonic() - start < seconds:
        try:
            response = httpx.get(f"{url}/readyz", timeout=5)
            body = response.json()
            if response.status_code == 200 and body.get("version") == version:
                return round(time.monotonic() - start, 2)
            last = body.get("error") or f"serving {body.get('version')}"
        except (httpx.TransportError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.25)
    raise DeliveryFailed(f"the server at {url} was not ready with {version} within {seconds:.0f} s (last: {last})")


def _skew(config: Config, url: str, canned: Canned) -> dict[str, Any]:
    """Send the canned rows one by one; compare with the offline scores, and time them."""
    settings, path = config.deployment, f"{url}/v1/models/{registered_model(config)}:predict"
    rows, offline = canned.rows[: settings.skew_rows], canned.scores[: settings.skew_rows]
    online, latencies = [], []
    with httpx.Client(timeout=30) as client:
        for row in rows:
            start = time.perf_counter()
            response = client.post(path, json={"instances": [row]})
            latencies.append((time.perf_counter() - start) * 1000)
            if response.status_code != 200:
                answer = f"{response.status_code} {response.text}"
                raise DeliveryFailed(f"skew check: the candidate refused a test row: {answer}")
            online.append(response.json()["predictions"][0]["probability"])
    gaps = np.abs(np.asarray(online) - np.asarray(offline))
    worst = int(gaps.argmax())
    result = {
        "rows": len(rows),
        "max_abs_diff": float(gaps.max()),
        "tolerance": settings.skew_tolerance,
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "latency_budget_ms": settings.latency_budget_ms,
    }
    if result["max_abs_diff"] > settings.skew_tolerance:
        raise DeliveryFailed(
            f"training/serving skew: test row {worst} gets {online[worst]:.6f} online but {offline[worst]:.6f} "
            f"offline (|diff| {gaps[worst]:.2e} > skew_tolerance {settings.skew_tolerance:g})"
        )
    if result["p99_ms"] > settings.latency_budget_ms:
        raise DeliveryFailed(
            f"skew check: p99 latency {result['p99_ms']} ms over {len(rows)} requests exceeds "
            f"latency_budget_ms {settings.latency_budget_ms:g}"
        )
    return result


def set_routing(config: Config, lease: bool = False, **changes: Any) -> Routing:
    """Change the traffic split (``canary_weight``, ``shadow``); leased for a delivery, open-ended for an operator.

    Raises:
        DeployError: the standby slot holds no model to send traffic to.
    """
    with state_lock(config):
        state = read_state(config)
        if state.live is None or state.slots[state.live.other] is None:
            raise DeployError("the standby slot holds no model: nothing to send canary or shadow traffic to")
        until = (_now() + timedelta(seconds=config.deployment.lease_seconds)).isoformat() if lease else None
        routing = replace(state.routing, **changes, lease_until=until)
        write_state(config, replace(state, routing=routing))
    return routing


def _watch(
    config: Config, router: str, version: str, seconds: float, enough: Callable[[dict[str, Any]], bool], **routing: Any
) -> dict[str, Any]:
    """Split traffic as ``routing`` says (leased, renewed), until ``enough(stats)`` or ``seconds``; then live only.

    Returns:
        The router's statistics for ``version`` over the period.
    """
    since = _router_stats(router)["seq"]
    set_routing(config, lease=True, **routing)
    deadline, renew = time.monotonic() + seconds, time.monotonic() + config.deployment.lease_seconds / 3
    try:
        while True:
            time.sleep(0.5)
            stats = _router_stats(router, since, version)
            if enough(stats) or time.monotonic() > deadline:
                return stats
            if time.monotonic() > renew:
                set_routing(config, lease=True, **routing)
                renew = time.monotonic() + config.deployment.lease_seconds / 3
    finally:
        set_routing(config, canary_weight=0.0, shadow=False)


def _router_stats(router: str, since: int | None = None, version: str | None = None) -> dict[str, Any]:
    params = {"since": since, "version": version} if since is not None else {}
    try:
        response = httpx.get(f"{router}/stats", params=params, timeout=10)
        response.raise_for_status()
        return response.json()
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"cannot read the router's statistics at {router}/stats: {exc}") from None


def _shadow(config: Config, router: str, pending: Pending) -> dict[str, Any]:
    settings = config.deployment

    def enough(stats: dict[str, Any]) -> bool:
        return stats["shadow"]["compared"] >= settings.shadow_min_requests

    stats = _watch(config, router, pending.version, settings.shadow_seconds, enough, shadow=True)
    compared, agreed = stats["shadow"]["compared"], stats["shadow"]["agreed"]
    result = {"compared": compared, "agreement": agreed / compared if compared else None, "errors": stats["errors"]}
    if compared < settings.shadow_min_requests:
        raise DeliveryFailed(
            f"shadow: only {compared} mirrored request(s) in {settings.shadow_seconds:g} s, fewer than "
            f"shadow_min_requests {settings.shadow_min_requests}: not enough traffic to judge the candidate"
        )
    if result["agreement"] < settings.min_agreement:
        raise DeliveryFailed(
            f"shadow: the candidate agreed with the live model on {result['agreement']:.1%} of {compared} "
            f"requests, under min_agreement {settings.min_agreement:.0%}"
        )
    return result


def _canary_step(config: Config, router: str, pending: Pending, weight: float) -> dict[str, Any]:
    settings = config.deployment

    def enough(stats: dict[str, Any]) -> bool:
        return stats["requests"] >= settings.canary_min_requests

    stats = _watch(config, router, pending.version, settings.canary_step_seconds, enough, canary_weight=weight)
    step = {"weight": weight, **{k: stats[k] for k in ("requests", "errors", "p50_ms", "p99_ms")}}
    where = f"canary step {weight:.0%}"
    if stats["requests"] < settings.canary_min_requests:
        raise DeliveryFailed(
            f"{where}: only {stats['requests']} request(s) reached the candidate in "
            f"{settings.canary_step_seconds:g} s, fewer than canary_min_requests "
            f"{settings.canary_min_requests}: rolled back"
        )
    if stats["errors"] / stats["requests"] > settings.max_error_rate:
        raise DeliveryFailed(
            f"{where}: {stats['errors']} of {stats['requests']} candidate answers failed, over max_error_rate "
            f"{settings.max_error_rate:.1%}: rolled back"
        )
    if stats["p99_ms"] > settings.latency_budget_ms:
        raise DeliveryFailed(
            f"{where}: candidate p99 latency {stats['p99_ms']} ms exceeds latency_budget_ms "
            f"{settings.latency_budget_ms:g}: rolled back"
        )
    return step


def _switch(config: Config, pending: Pending, checks: dict[str, Any]) -> DeploymentState:
    """Make the pending delivery's slot live, if live is still what it was gated against."""
    with state_lock(config):
        state = read_state(config)
        if state.pending is None or state.pending.version != pending.version:
            raise DeployError(f"the delivery of {pending.version} was stopped meanwhile: not switched")
        current = state.live_record.version if state.live_record else None
        expected = pending.checks.get("expected_live", current)
        if current != expected:
            new = state.with_revert(_revert_event(state, f"live changed from {expected} to {current} meanwhile"))
            write_state(config, new)
            raise DeployError(f"the live model changed from {expected} to {current} during the delivery: not switched")
        event = Event(
            EventKind.PROMOTE,
            state.live,
            pending.slot,
            pending.version,
            pending.ds,
            pending.run_id,
            _now().isoformat(),
            by=pending.by,
            reason=pending.reason,
            checks=checks,
        )
        new = state.with_event(event)
        write_state(config, new)
        collect_garbage(config, new)
    sync_aliases(config, aliases(new))
    log.info("switched: %s is live in %s (was %s)", pending.version, pending.slot, state.live)
    return new


def abort(config: Config, why: str) -> DeploymentState:
    """Revert the pending delivery: the standby slot gets its previous model back, live is unchanged.

    Raises:
        DeployError: nothing is pending.
    """
    with state_lock(config):
        state = read_state(config)
        if state.pending is None:
            raise DeployError("no delivery is pending: nothing to abort")
        new = state.with_revert(_revert_event(state, why))
        write_state(config, new)
    log.warning("delivery of %s reverted: %s", state.pending.version, why)
    return new


def switch_standby(config: Config, run_id: str, by: str | None = None, reason: str | None = None) -> DeploymentState:
    """Make the standby slot live (an operator's switch): a rollback if it holds the previous live version.

    Raises:
        DeployError: a delivery is pending, or the standby slot is empty.
    """
    with state_lock(config):
        state = read_state(config)
        if state.pending:
            raise DeployError(f"a delivery of {state.pending.version} is pending: abort or resume it first")
        if state.live is None or state.slots[state.live.other] is None:
            raise DeployError("the standby slot holds no model: nothing to switch to")
        target, record = state.live.other, state.slots[state.live.other]
        stack = state.live_stack
        kind = EventKind.ROLLBACK if len(stack) > 1 and stack[-2] == record.version else EventKind.PROMOTE
        event = Event(kind, state.live, target, record.version, record.ds, run_id, _now().isoformat(), by, reason)
        new = state.with_event(event)
        write_state(config, new)
    sync_aliases(config, aliases(new))
    return new


def promote_version(
    config: Config, version: str | None, run_id: str, by: str | None = None, reason: str | None = None
) -> DeploymentState:
    """Deliver a kept model version (an operator's choice, e.g. from the deployment DAG), checks included.

    Raises:
        DeployError: no such version is kept, or it is live already.
    """
    if not version:
        raise DeployError(f"name the version to promote; kept versions: {kept(config)}")
    record = installed_record(config, version)
    if record is None:
        raise DeployError(f"no kept model version {version!r}; kept versions: {kept(config)}")
    live = read_state(config).live_record
    if live and live.version == version:
        raise DeployError(f"version {version} is live already")
    return deliver(config, record, live.version if live else None, run_id=run_id, by=by, reason=reason)
