"""An operator's deployment actions by name: one entry point for the CLI's ``deploy`` verb and the deployment DAG."""

from __future__ import annotations

import json

from pipelines.core.config import Config
from pipelines.core.deployment_state import read_state
from pipelines.deployment.controller import abort, promote_version, resume, set_routing, switch_standby
from pipelines.deployment.rollback import rollback

ACTIONS = ("status", "promote", "rollback", "switch", "canary", "shadow", "resume", "abort")


def act(
    config: Config,
    action: str,
    run_id: str,
    *,
    version: str | None = None,
    canary_weight: float | None = None,
    shadow: bool | None = None,
    by: str | None = None,
    reason: str | None = None,
) -> str:
    """Do ``action`` and say what was done in one line (``status``: the state as JSON).

    Raises:
        DeployError: the action is refused (the message says why and what to do).
        ValueError: an unknown action, or its option is missing.
    """
    who = {"by": by, "reason": reason}
    if action == "status":
        return json.dumps(read_state(config).to_dict(), indent=2)
    if action == "canary":
        if canary_weight is None:
            raise ValueError("the canary action needs a weight, e.g. 0.1 (0 stops the canary)")
        return f"canary weight now {set_routing(config, canary_weight=canary_weight).canary_weight:.0%}"
    if action == "shadow":
        if shadow is None:
            raise ValueError("the shadow action needs on or off")
        return f"shadow now {'on' if set_routing(config, shadow=shadow).shadow else 'off'}"
    if action == "rollback":
        return rollback(config, run_id, **who)[1]
    if action == "abort":
        state = abort(config, f"aborted by {by or 'an operator'}: {reason or 'no reason given'}")
        return f"delivery reverted; live is still {state.live} = {state.live_record.version if state.live else None}"
    if action == "switch":
        state = switch_standby(config, run_id, **who)
    elif action == "resume":
        state = resume(config)
    elif action == "promote":
        state = promote_version(config, version, run_id, **who)
    else:
        raise ValueError(f"unknown deployment action {action!r}: the actions are {list(ACTIONS)}")
    return f"live is now {state.live} = {state.live_record.version}"
