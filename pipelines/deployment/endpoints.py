"""Where the router and the two slot servers answer, if they run at all.

``python -m pipelines stack up`` starts them as local processes and records them in
``<artifact_root>/stack/stack.json`` (pid and URL per role). Elsewhere (compose, Kubernetes) the config's
``serving.urls`` names them. With neither, no server runs: a promotion only switches the state, and
servers started later load what it says.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.core.artifacts import CorruptArtifact, read_json
from pipelines.core.config import Config
from pipelines.core.deployment_state import Slot

ROLES = ("router", "blue", "green")


def stack_dir(config: Config) -> Path:
    """Pid file, logs and the stack record of the local serving processes."""
    return config.artifact_root / "stack"


def stack_file(config: Config) -> Path:
    """The record ``stack up`` writes: ``{role: {"pid": ..., "url": ...}}``."""
    return stack_dir(config) / "stack.json"


def alive(pid: int) -> bool:
    """True if a process with this pid exists (and is not a zombie we could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return True


@dataclass(frozen=True)
class Endpoints:
    """Base URLs of the router and of each slot's model server."""

    router: str
    blue: str
    green: str

    def slot(self, slot: Slot) -> str:
        """The base URL of ``slot``'s server."""
        return self.blue if slot is Slot.BLUE else self.green


def configured(config: Config) -> Endpoints:
    """The URLs the config gives: ``serving.urls``, else ``serving.host`` with each role's port."""
    serving = config.serving
    ports = {"router": serving.router_port, "blue": serving.blue_port, "green": serving.green_port}
    return Endpoints(**{role: serving.urls.get(role, f"http://{serving.host}:{ports[role]}") for role in ROLES})


def running(config: Config) -> Endpoints | None:
    """The servers a promotion must go through, or None if none runs.

    ``serving.urls`` means servers run elsewhere; otherwise the local stack counts while its recorded
    processes are alive.
    """
    if config.serving.urls:
        return configured(config)
    path = stack_file(config)
    try:
        record = read_json(path) if path.exists() else None
    except CorruptArtifact:
        return None
    if not record or not all(role in record and alive(record[role]["pid"]) for role in ROLES):
        return None
    return Endpoints(**{role: record[role]["url"] for role in ROLES})
