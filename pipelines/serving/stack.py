"""The local serving stack: the router and both slots' model servers as background processes.

``python -m pipelines stack up`` starts what is not running yet (each detached, in its own session,
logging to ``<artifact_root>/stack/logs/<role>.log``), waits until every process answers ``/healthz``
and the live slot ``/readyz``, and records pids and URLs in ``stack.json`` (which is how the deployment
controller finds them). ``stack down`` stops them (SIGTERM, then SIGKILL after a grace period);
``stack status`` says what runs and which version each slot serves.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from pipelines.core.artifacts import CorruptArtifact, read_json, write_json_atomic
from pipelines.core.config import PROJECT_ROOT, Config
from pipelines.core.contracts import PipelineError
from pipelines.core.deployment_state import read_state
from pipelines.deployment.endpoints import ROLES, alive, configured, stack_dir, stack_file


def _command(config_path: Path, role: str, port: int, host: str) -> list[str]:
    base = [sys.executable, "-m", "pipelines"]
    if role == "router":
        return [*base, "router", "--config", str(config_path), "--host", host, "--port", str(port)]
    return [*base, "serve", "--config", str(config_path), "--slot", role, "--host", host, "--port", str(port)]


def _recorded(config: Config) -> dict[str, Any]:
    path = stack_file(config)
    try:
        return read_json(path) if path.exists() else {}
    except CorruptArtifact:
        return {}


def up(config: Config, config_path: Path, seconds: float = 180) -> dict[str, Any]:
    """Start the roles that are not running, wait for them, record them; returns the stack record.

    Raises:
        PipelineError: a process exited or did not answer in time (its log's tail is in the message).
    """
    if config.serving.urls:
        raise PipelineError("serving.urls is set: the servers run elsewhere, `stack up` only starts local ones")
    record, urls = _recorded(config), configured(config)
    logs = stack_dir(config) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    host = config.serving.host
    ports = {"router": config.serving.router_port, "blue": config.serving.blue_port, "green": config.serving.green_port}
    for role in ROLES:
        if role in record and alive(record[role]["pid"]):
            continue
        with (logs / f"{role}.log").open("a") as log_file:
            process = subprocess.Popen(
                _command(config_path, role, ports[role], host),
                cwd=PROJECT_ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # survives the shell that started it; stopped by `stack down`
            )
        record[role] = {"pid": process.pid, "url": getattr(urls, role), "started": datetime.now(UTC).isoformat()}
    write_json_atomic(stack_file(config), record)
    deadline = time.monotonic() + seconds
    for role in ROLES:
        _wait(record[role], "/healthz", deadline, logs / f"{role}.log", role)
    if read_state(config).live:
        _wait(record["router"], "/readyz", deadline, logs / "router.log", "router (live slot)")
    return record


def _wait(entry: dict[str, Any], path: str, deadline: float, log_path: Path, role: str) -> None:
    last = "no answer"
    while time.monotonic() < deadline:
        if not alive(entry["pid"]):
            raise PipelineError(f"the {role} process exited; the end of {log_path}:\n{_tail(log_path)}")
        try:
            response = httpx.get(entry["url"] + path, timeout=2)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.TransportError as exc:
            last = str(exc)
        time.sleep(0.25)
    raise PipelineError(f"the {role} at {entry['url']} did not answer {path} in time ({last}); see {log_path}")


def _tail(path: Path, lines: int = 20) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no log)"


def down(config: Config, grace: float = 10) -> list[str]:
    """Stop the recorded processes; returns one line per role."""
    record, lines = _recorded(config), []
    for role, entry in record.items():
        pid = entry["pid"]
        if not alive(pid):
            lines.append(f"{role}: not running")
            continue
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if alive(pid):
            os.killpg(pid, signal.SIGKILL)
        lines.append(f"{role}: stopped (pid {pid})")
    stack_file(config).unlink(missing_ok=True)
    return lines


def status(config: Config) -> list[str]:
    """One line per role: running or not, its URL, and what its /readyz says."""
    record, lines = _recorded(config), []
    if not record:
        return ["no local stack recorded: start one with `python -m pipelines stack up`"]
    for role in ROLES:
        entry = record.get(role)
        if not entry or not alive(entry["pid"]):
            lines.append(f"{role:6} not running")
            continue
        try:
            answer = httpx.get(entry["url"] + "/readyz", timeout=2)
            body = answer.json()
            said = f"ready, {body.get('version')}" if answer.status_code == 200 else f"not ready: {body.get('error')}"
        except (httpx.TransportError, ValueError) as exc:
            said = f"no answer ({exc})"
        lines.append(f"{role:6} pid {entry['pid']:<7} {entry['url']:<24} {said}")
    return lines
