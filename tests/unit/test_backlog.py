"""A listener's backlog on real loopback sockets: its length, and holding new connections off
while the connections already in it stay there, requests included, for an ``accept()``."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest

from django_asgiserve import backlog
from tests.helpers.polling import wait_for

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="Linux's socket filters and TCP_INFO"
)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock


def connect(listener: socket.socket) -> socket.socket:
    return socket.create_connection(listener.getsockname(), timeout=0.5)


def test_queued_counts_the_connections_waiting_for_an_accept(listener):
    assert backlog.queued(listener) == 0
    clients = [connect(listener) for _ in range(3)]
    wait_for(lambda: backlog.queued(listener) == 3, what="3 connections in the backlog")
    accepted, _ = listener.accept()
    assert backlog.queued(listener) == 2
    for sock in [accepted, *clients]:
        sock.close()


def test_a_connected_socket_has_no_backlog(listener):
    with connect(listener) as client:
        assert backlog.queued(client) == 0


def test_held_off_new_connections_are_ignored_and_the_backlog_kept(listener):
    waiting = connect(listener)
    waiting.sendall(b"POST / HTTP/1.1\r\n\r\n")
    wait_for(lambda: backlog.queued(listener) == 1, what="a connection in the backlog")

    assert backlog.hold_new_connections(listener)

    # Its SYN gets no answer (not a refusal: the client would try again).
    with pytest.raises(TimeoutError):
        connect(listener)
    assert backlog.queued(listener) == 1
    accepted, _ = listener.accept()
    with accepted, waiting:
        assert accepted.recv(100) == b"POST / HTTP/1.1\r\n\r\n"
        accepted.sendall(b"HTTP/1.1 200 OK\r\n")
        assert waiting.recv(100) == b"HTTP/1.1 200 OK\r\n"


def test_held_off_leaves_established_connections_alone(listener):
    # The program is inherited by connections completing their handshake once it is attached:
    # it must pass every segment but the one opening a connection.
    client = connect(listener)
    accepted, _ = listener.accept()
    with client, accepted:
        assert backlog.hold_new_connections(accepted)
        client.sendall(b"x" * 100_000)
        received = b""
        while len(received) < 100_000:
            received += accepted.recv(65536)
        client.shutdown(socket.SHUT_WR)
        assert accepted.recv(10) == b""
