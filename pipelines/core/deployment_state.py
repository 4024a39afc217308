"""Deployment state: two slots (blue, green), which one is live, what each holds, how traffic is split, and the history.

It is read by nearly every stage (drift compares with the live model's training data, evaluation
scores the live model, the gate records which version it compared with) and written only by the
deployment layer, always under ``state_lock``. ``state.json`` is replaced atomically; every revision
is also kept as ``states/<n>.json``, so a state file damaged by hand or by a full disk can be
restored (``python -m pipelines deploy restore``). This module imports neither the gate nor MLflow.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pipelines.core.artifacts import CorruptArtifact, file_lock, read_json, write_json_atomic
from pipelines.core.config import Config
from pipelines.core.contracts import PipelineError
from pipelines.core.storage import lease

STATE_FILE = "state.json"
REVISIONS = "states"
KEEP_REVISIONS = 100


class Slot(StrEnum):
    """A deployment slot; promotion fills the one that is not live."""

    BLUE = "blue"
    GREEN = "green"

    @property
    def other(self) -> Slot:
        """The slot that is not this one."""
        return Slot.GREEN if self is Slot.BLUE else Slot.BLUE


class EventKind(StrEnum):
    """What switched the live slot."""

    PROMOTE = "promote"
    ROLLBACK = "rollback"
    REVERT = "revert"  # a delivery stopped before its switch: live unchanged, the standby slot restored


class DeployError(PipelineError):
    """A promotion, rollback or restore that cannot be done; the state is left unchanged."""


@dataclass(frozen=True)
class SlotRecord:
    """A model version installed in a slot: where its SavedModel and drift reference are, where it came from."""

    version: str
    model_uri: str
    reference_uri: str
    ds: str
    run_id: str
    mlflow_run_id: str | None = None
    registry_version: str | None = None
    decision: dict[str, Any] | None = None


@dataclass(frozen=True)
class Event:
    """One switch of ``live``: which version went live, in which slot, from which slot, who did it and why.

    ``checks`` holds what the deployment controller measured before the switch (skew, shadow, canary),
    or why it could not (no serving stack running).
    """

    action: EventKind
    source: Slot | None
    target: Slot
    version: str
    ds: str | None
    run_id: str
    at: str
    by: str | None = None
    reason: str | None = None
    checks: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = asdict(self)
        data["from"], data["to"] = data.pop("source"), data.pop("target")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        """Read back what ``to_dict`` wrote."""
        return cls(
            action=EventKind(data["action"]),
            source=Slot(data["from"]) if data.get("from") else None,
            target=Slot(data["to"]),
            version=data["version"],
            ds=data.get("ds"),
            run_id=data["run_id"],
            at=data["at"],
            by=data.get("by"),
            reason=data.get("reason"),
            checks=data.get("checks"),
        )


@dataclass(frozen=True)
class Routing:
    """How the router splits traffic besides sending it to the live slot.

    ``canary_weight`` of the requests go to the standby slot; with ``shadow`` every request is also
    mirrored there (answers recorded, not returned). A delivery in progress sets them with a lease:
    once ``lease_until`` has passed (the controller died), the router ignores both, so exactly one
    version answers until the controller resumes or reverts. An operator's own setting has no lease.
    """

    canary_weight: float = 0.0
    shadow: bool = False
    lease_until: str | None = None

    def effective(self, now: datetime | None = None) -> Routing:
        """This routing, or plain live-only routing if its lease has expired."""
        if self.lease_until and (now or datetime.now(UTC)) >= datetime.fromisoformat(self.lease_until):
            return Routing()
        return self


@dataclass(frozen=True)
class Pending:
    """A delivery in progress: ``version`` is in ``slot`` (the standby) and has not gone live yet.

    ``previous`` is what the slot held before, put back if the delivery is reverted; ``phase`` is the
    last step reached (staged, ready, skew, shadow, canary), so a restarted controller can resume or revert.
    """

    version: str
    slot: Slot
    phase: str
    run_id: str
    ds: str | None
    started: str
    owner: str
    previous: SlotRecord | None = None
    by: str | None = None
    reason: str | None = None
    checks: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {**asdict(self), "previous": asdict(self.previous) if self.previous else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pending:
        """Read back what ``to_dict`` wrote."""
        previous = SlotRecord(**data["previous"]) if data.get("previous") else None
        return cls(**{**data, "slot": Slot(data["slot"]), "previous": previous})


@dataclass(frozen=True)
class DeploymentState:
    """The whole state: ``live`` names a slot (or None before the first promotion)."""

    live: Slot | None = None
    slots: dict[Slot, SlotRecord | None] = field(default_factory=lambda: dict.fromkeys(Slot))
    history: tuple[Event, ...] = ()
    routing: Routing = Routing()
    pending: Pending | None = None

    @property
    def live_record(self) -> SlotRecord | None:
        """What the live slot holds, or None before the first promotion."""
        return self.slots[self.live] if self.live else None

    @property
    def live_stack(self) -> list[str]:
        """Versions that went live, newest last, with rolled-back ones popped: ``[-2]`` is the rollback target."""
        stack: list[str] = []
        for event in self.history:
            if event.action is EventKind.PROMOTE:
                stack.append(event.version)
            elif event.action is EventKind.ROLLBACK and stack:
                stack.pop()
        return stack

    def with_event(self, event: Event, slot_record: SlotRecord | None = None) -> DeploymentState:
        """The state after ``event``: its target slot is live (holding ``slot_record`` if given).

        The traffic split is reset and a delivery in progress ends: after a switch one version answers.
        """
        slots = dict(self.slots)
        if slot_record is not None:
            slots[event.target] = slot_record
        return replace(
            self, live=event.target, slots=slots, history=(*self.history, event), routing=Routing(), pending=None
        )

    def with_revert(self, event: Event) -> DeploymentState:
        """The state after a delivery in progress is stopped: ``live`` as it was, the standby slot as before it."""
        slots = dict(self.slots)
        if self.pending:
            slots[self.pending.slot] = self.pending.previous
        return replace(self, slots=slots, history=(*self.history, event), routing=Routing(), pending=None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "live": self.live,
            "slots": {slot.value: asdict(r) if r else None for slot, r in self.slots.items()},
            "history": [e.to_dict() for e in self.history],
            "routing": asdict(self.routing),
            "pending": self.pending.to_dict() if self.pending else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeploymentState:
        """Read back what ``to_dict`` wrote."""
        slots = {slot: SlotRecord(**data["slots"][slot]) if data["slots"].get(slot) else None for slot in Slot}
        live = Slot(data["live"]) if data.get("live") else None
        if live and slots[live] is None:
            raise ValueError(f"live slot {live} is empty")
        history = tuple(Event.from_dict(e) for e in data.get("history", []))
        routing = Routing(**data["routing"]) if data.get("routing") else Routing()
        pending = Pending.from_dict(data["pending"]) if data.get("pending") else None
        return cls(live, slots, history, routing, pending)


def deployment_dir(config: Config) -> Path:
    """The folder of the deployment state, its revisions and the model versions."""
    return config.artifact_root / "deployment"


def state_path(config: Config) -> Path:
    """The current deployment state file."""
    return deployment_dir(config) / STATE_FILE


def read_state(config: Config) -> DeploymentState:
    """The current state (an empty one before the first promotion).

    Raises:
        DeployError: the state file is damaged; the message names it and how to restore it.
    """
    path = state_path(config)
    if not path.exists():
        return DeploymentState()
    try:
        return DeploymentState.from_dict(read_json(path))
    except CorruptArtifact as exc:
        reason = str(exc)
    except (KeyError, TypeError, ValueError) as exc:
        reason = f"{path} does not hold a valid state ({exc!r})"
    raise DeployError(
        f"the deployment state is damaged: {reason}. Restore its last good revision with "
        f"`python -m pipelines deploy restore --config <your config>`"
    )


def write_state(config: Config, state: DeploymentState) -> None:
    """Keep ``state`` as a new revision, then make it current with one atomic rename. Call under ``state_lock``."""
    data = state.to_dict()
    revisions = deployment_dir(config) / REVISIONS
    write_json_atomic(revisions / f"{_next_revision(revisions):06d}.json", data)
    write_json_atomic(state_path(config), data)
    for old in _revisions(revisions)[:-KEEP_REVISIONS]:
        old.unlink()


def _revisions(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if re.fullmatch(r"\d{6}\.json", p.name)) if folder.exists() else []


def _next_revision(folder: Path) -> int:
    existing = _revisions(folder)
    return int(existing[-1].stem) + 1 if existing else 1


def restore_state(config: Config) -> tuple[DeploymentState, Path]:
    """Make the newest readable revision current again (after ``state.json`` was damaged).

    Returns:
        The restored state and the revision it came from.

    Raises:
        DeployError: no revision can be read.
    """
    with state_lock(config):
        for revision in reversed(_revisions(deployment_dir(config) / REVISIONS)):
            try:
                state = DeploymentState.from_dict(read_json(revision))
            except (CorruptArtifact, KeyError, TypeError, ValueError):
                continue
            write_json_atomic(state_path(config), state.to_dict())
            return state, revision
    raise DeployError(f"no readable revision of the deployment state in {deployment_dir(config) / REVISIONS}")


@contextmanager
def state_lock(config: Config) -> Iterator[None]:
    """Serialize read-modify-write of the state across processes (runs of a backfill may overlap)."""
    lock = deployment_dir(config) / ".state.lock"
    with file_lock(lock), lease(lock, refresh=deployment_dir(config)):  # the lease: across machines
        yield


def live_version(config: Config) -> SlotRecord | None:
    """The record of the version in the live slot, or None before the first promotion."""
    return read_state(config).live_record
