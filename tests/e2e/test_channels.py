"""Channels groups across worker processes: ``channels`` with ``channels-redis`` on a real
``redis-server``, served by asgiserve with ``--workers 2`` on every backend.

The demo's ``/ws/chat/`` consumer (``demo/chat.py``) joins the group "chat" and tells each client
the pid of the worker serving it; a message sent by one client must reach every client, on both
workers.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.helpers.hiding import hiding_environ
from tests.helpers.polling import DEADLINE
from tests.helpers.redis import redis_server

#: Connections opened, at most, before both workers serve one of them.
MAX_CLIENTS = 40


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    try:
        with redis_server() as url:
            yield url
    except LookupError as error:
        pytest.skip(str(error))


def receive(client: ClientConnection) -> dict[str, object]:
    message = json.loads(client.recv(timeout=DEADLINE))
    assert isinstance(message, dict)
    return message


def test_group_messages_reach_every_worker(start, backend, redis_url):
    server = start(
        "--noreload", "--backend", backend, "--workers", "2",
        env={"ASGISERVE_DEMO_CHANNEL_LAYER": redis_url},
    ).wait_serving()  # fmt: skip
    url = f"ws://127.0.0.1:{server.port}/ws/chat/"
    clients: dict[ClientConnection, int] = {}
    with contextlib.ExitStack() as stack:
        # The kernel spreads connections over the workers' sockets: open clients until both
        # workers serve some (the chance that 40 all land on one is negligible).
        while len(set(clients.values())) < 2 and len(clients) < MAX_CLIENTS:
            client = stack.enter_context(connect(url, open_timeout=DEADLINE))
            clients[client] = int(receive(client)["pid"])  # type: ignore[call-overload]
        pids = set(clients.values())
        assert len(pids) == 2, f"{len(clients)} connections, all served by {pids}"

        sender = next(iter(clients))
        sender.send("hello, everyone")
        for client, pid in clients.items():
            message = receive(client)
            assert message == {"text": "hello, everyone", "from": clients[sender], "pid": pid}
    assert "asgiserve.W002" not in server.output
    assert "Traceback" not in server.output, server.output


def test_the_demo_serves_without_channels(start, tmp_path):
    server = start(
        "--noreload",
        "--backend",
        "uvicorn",
        env=hiding_environ(tmp_path / "hidden", "channels", "channels_redis"),
    ).wait_serving()
    base = f"ws://127.0.0.1:{server.port}"
    with connect(f"{base}/ws/echo/", open_timeout=DEADLINE) as client:
        client.send("hi")
        assert client.recv(timeout=DEADLINE) == "echo: hi"
    # No route: refused before the handshake completes (uvicorn answers 403).
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{base}/ws/chat/", open_timeout=DEADLINE)
    assert refused.value.response.status_code == 403
    assert "Traceback" not in server.output, server.output
