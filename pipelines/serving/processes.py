"""Model servers as local background processes: start one on a free port and wait until it answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pipelines.core.config import PROJECT_ROOT
from pipelines.core.deployment_state import Slot


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    config_path: Path, slot: Slot | str, port: int | None = None, seconds: float = 120
) -> tuple[subprocess.Popen, str]:
    """Start ``python -m pipelines serve`` for ``slot`` and wait until its ``/healthz`` answers.

    Returns:
        The process (stderr piped, for the caller to read on failure) and the server's base URL.

    Raises:
        RuntimeError: the process exited, or did not answer within ``seconds`` (it is killed then).
    """
    port = port or free_port()
    command = [sys.executable, "-m", "pipelines", "serve", "--config", str(config_path), "--slot", str(slot)]
    process = subprocess.Popen(
        [*command, "--port", str(port)], cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {slot} server exited: {process.stderr.read()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"the {slot} server did not answer within {seconds:.0f} s")
