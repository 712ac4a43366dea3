"""How the granian backend stops, which granian offers no API for.

A stopping worker must stop accepting at once (new connections wait in the shared backlog for
the next worker), still answer connections it accepted whose request it has not read yet, let
requests in flight finish, and return from ``serve()`` by the end of the grace period even with
a stream open. The backend serves a socket the test binds, in a thread, as a worker drives it;
clients are raw sockets so that "accepted, request not sent yet" can be made on purpose.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from django_asgiserve.backends import granian as granian_backend
from django_asgiserve.run_config import ServerConfig
from django_asgiserve.sockets import BACKLOG
from tests.conftest import DEADLINE, wait_for

pytest.importorskip("granian")

GRACE = 3.0
#: Wider than the real settle time, so that the test has time to act inside the window.
SETTLE = 1.0


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode()


def read_all(conn: socket.socket) -> bytes:
    conn.settimeout(DEADLINE)
    chunks = []
    while chunk := conn.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass
class Served:
    backend: granian_backend.GranianBackend
    listener: socket.socket
    thread: threading.Thread
    slow_started: threading.Event
    stream_started: threading.Event

    def connect(self) -> socket.socket:
        return socket.create_connection(self.listener.getsockname(), timeout=DEADLINE)

    def holders(self) -> int:
        """How many file descriptors of this process hold the listening socket."""
        target = f"socket:[{os.fstat(self.listener.fileno()).st_ino}]"
        count = 0
        for fd in Path("/proc/self/fd").iterdir():
            try:
                count += os.readlink(fd) == target
            except OSError:
                continue
        return count

    def accept_queue(self) -> int:
        """Connections waiting in the listening socket's backlog (Linux: its rx_queue)."""
        inode = str(os.fstat(self.listener.fileno()).st_ino)
        for row in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = row.split()
            if fields[9] == inode:
                return int(fields[4].split(":")[1], 16)
        raise AssertionError("the listening socket is not in /proc/net/tcp")


def make_app(slow_started: threading.Event, stream_started: threading.Event):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/stream":
            stream_started.set()
            while True:
                await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
                await asyncio.sleep(0.1)
        if scope["path"] == "/slow":
            slow_started.set()
            await asyncio.sleep(0.5)
        await send({"type": "http.response.body", "body": b"answered " + scope["path"].encode()})

    return app


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setattr(granian_backend, "ACCEPTED_SETTLE_SECONDS", SETTLE)
    listener = socket.create_server(("127.0.0.1", 0), backlog=BACKLOG)
    backend = granian_backend.GranianBackend(
        ServerConfig(backend="granian", graceful_timeout=GRACE)
    )
    slow_started, stream_started = threading.Event(), threading.Event()
    app = make_app(slow_started, stream_started)
    thread = threading.Thread(target=backend.serve, args=(app, [listener]), daemon=True)
    thread.start()
    served = Served(backend, listener, thread, slow_started, stream_started)
    first = served.connect()
    first.sendall(request("/"))
    assert read_all(first).endswith(b"answered /")
    yield served
    backend.stop()
    thread.join(DEADLINE)
    listener.close()


def test_stop_accepts_nothing_new_and_answers_what_it_accepted(served):
    unread = served.connect()  # accepted by granian, request not sent yet
    wait_for(lambda: served.accept_queue() == 0, what="granian to accept the connection")
    slow = served.connect()
    slow.sendall(request("/slow"))
    wait_for(served.slow_started.is_set, what="the slow request to start")

    # stop() returns once granian's accept loop is over, after the settle time: act inside it.
    threading.Thread(target=served.backend.stop, daemon=True).start()
    wait_for(lambda: served.holders() == 1, what="granian to stop listening")
    late = served.connect()
    late.sendall(request("/late"))
    unread.sendall(request("/unread"))

    # The new connection waits in the backlog for the next worker: here, the test.
    served.listener.settimeout(DEADLINE)
    conn, _ = served.listener.accept()
    with conn:
        assert conn.recv(100).startswith(b"GET /late ")
    assert read_all(unread).endswith(b"answered /unread")
    assert read_all(slow).endswith(b"answered /slow")
    served.thread.join(DEADLINE)
    assert not served.thread.is_alive(), "serve() did not return"
    late.close()


def test_stop_returns_at_the_deadline_with_a_stream_open(served):
    stream = served.connect()
    stream.sendall(request("/stream"))
    wait_for(served.stream_started.is_set, what="the stream to start")

    served.backend.stop()
    served.thread.join(DEADLINE)
    assert not served.thread.is_alive(), "serve() did not return"
    assert b"tick" in read_all(stream)


def test_once_stop_returns_the_shared_socket_can_be_shut_down(served, monkeypatch):
    # What the supervisor does at the end of a drain. Under granian's accept loop, the socket
    # it watches would say "closed" for good: granian retried accept() without end and never
    # answered the connections it held (issue 13's lost POSTs).
    monkeypatch.setattr(granian_backend, "ACCEPT_LOOP_EXIT_TIMEOUT", SETTLE + DEADLINE)
    slow = served.connect()
    slow.sendall(request("/slow"))
    wait_for(served.slow_started.is_set, what="the slow request to start")

    served.backend.stop()
    served.listener.shutdown(socket.SHUT_RD)
    assert read_all(slow).endswith(b"answered /slow")
    served.thread.join(DEADLINE)
    assert not served.thread.is_alive(), "serve() did not return"
