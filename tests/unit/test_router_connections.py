"""The router's kept connections to the slot servers: a connection its server closed while it sat in the pool (an
idle timeout, a restart) must not cost a client its answer."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from conftest import write_config
from fastapi.testclient import TestClient

from pipelines.core.config import load_config
from pipelines.core.deployment_state import DeploymentState, Slot, SlotRecord, write_state
from pipelines.deployment.endpoints import Endpoints
from pipelines.deployment.registry import registered_model
from pipelines.serving import router, server


class ClosingSlot:
    """A slot server on 127.0.0.1 that answers the first request on each connection and keeps it open, then closes
    the connection without an answer when a second request comes on it: what a server that timed out the idle
    connection at that moment does."""

    ANSWER = json.dumps({"predictions": [{"probability": 0.25}]}).encode()

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            connection, _ = self.listener.accept()
            self.connections += 1
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            for number in (1, 2):
                request = self._read_request(connection)
                if request is None:
                    return
                if number == 2:
                    self.dropped += 1
                    return  # closed with the request unanswered
                head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nX-Model-Version: v1\r\n"
                connection.sendall(f"{head}content-length: {len(self.ANSWER)}\r\n\r\n".encode() + self.ANSWER)

    @staticmethod
    def _read_request(connection: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
        )
        while len(body) < length:
            body += connection.recv(65536)
        return head


@pytest.fixture
def routed(tmp_path):
    config = load_config(write_config(tmp_path))
    record = SlotRecord("v1", "unused", "unused", "2026-01-03", "run-1")
    write_state(config, DeploymentState(live=Slot.BLUE, slots={Slot.BLUE: record, Slot.GREEN: None}))
    slot = ClosingSlot()
    app = router.create_app(config, Endpoints(router="http://127.0.0.1:1", blue=slot.url, green=slot.url))
    with TestClient(app) as client:
        yield client, slot, registered_model(config)


def test_a_request_on_a_connection_the_slot_closed_is_sent_again_on_a_new_one(routed):
    client, slot, name = routed
    body = {"instances": [{"age": 39}]}
    answers = [client.post(f"/v1/models/{name}:predict", json=body) for _ in range(4)]

    assert [a.status_code for a in answers] == [200] * 4, [a.text for a in answers]
    assert {a.headers["X-Model-Version"] for a in answers} == {"v1"}
    assert slot.dropped >= 1 and slot.connections >= 2  # the pooled connection was closed and a new one answered


def test_the_servers_keep_an_idle_connection_longer_than_the_routers_pool_does():
    assert server.KEEP_ALIVE_SECONDS > router.POOL_KEEPALIVE_SECONDS
