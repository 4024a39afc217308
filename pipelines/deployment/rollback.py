"""Rollback: make the previously live version live again, one step back through the history.

Not a toggle: two rollbacks in a row go two versions back (A, B, C promoted: C -> B -> A), and a
rollback refuses when nothing older was ever live. The version rolled away from stays in its slot
(or its version folder), so it is never dropped from reach.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pipelines.core.config import Config
from pipelines.core.deployment_state import (
    DeployError,
    DeploymentState,
    Event,
    EventKind,
    read_state,
    state_lock,
    write_state,
)
from pipelines.deployment.models import installed_record
from pipelines.deployment.registry import aliases, sync_aliases


def rollback(
    config: Config, run_id: str = "manual", by: str | None = None, reason: str | None = None
) -> tuple[DeploymentState, str]:
    """Switch live back to the version that was live before the current one.

    Returns:
        The new state and one line saying what was done.

    Raises:
        DeployError: nothing is live, nothing older was live, its model folder is gone, or a delivery
            is pending (abort it first).
    """
    with state_lock(config):
        state = read_state(config)
        if state.pending:
            raise DeployError(
                f"a delivery of {state.pending.version} is pending: stop it first (`deploy abort`), then roll back"
            )
        if not state.live_record:
            raise DeployError("nothing is live yet: no rollback possible")
        stack = state.live_stack
        if len(stack) < 2:
            raise DeployError(f"no version was live before {state.live_record.version}: nothing to roll back to")
        version, current = stack[-2], state.live_record
        standby = state.live.other
        in_slot = state.slots[standby]
        record = in_slot if in_slot and in_slot.version == version else installed_record(config, version)
        if record is None:
            raise DeployError(f"version {version} is no longer kept on disk: cannot roll back to it")
        at = datetime.now(UTC).isoformat()
        event = Event(EventKind.ROLLBACK, state.live, standby, version, record.ds, run_id, at, by, reason)
        new = state.with_event(event, record)
        write_state(config, new)
    sync_aliases(config, aliases(new))
    line = f"rolled back: live is now {standby} = {version} (was {state.live} = {current.version})"
    return new, line
