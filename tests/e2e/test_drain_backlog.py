"""The end of ``--drain-delay`` resets no connection waiting in the listen backlog.

A connection the kernel has completed but no worker has accepted yet (its event loop busy; here
the workers are stopped with SIGSTOP) carries a request its client has sent, maybe a POST that a
balancer will not resend; shutting the port down would reset it. At the end of the delay the
server holds new connections off, the workers accept and answer what waits, and only then does
the port refuse. On every backend, with one worker and with two.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading

import httpx
import pytest

from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.procfs import listen_backlog, stat_fields
from tests.helpers.server import wait_workers_answering

#: Requests sent while the workers are stopped: they wait in the backlog.
WAITING = 6


def new_connection(port: int) -> str:
    """What a new connection to ``port`` meets: ``accepted`` (by the kernel, into the backlog),
    ``refused``, or ``ignored`` (held off: its SYN gets no answer)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.25):
            return "accepted"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "ignored"


def stopped(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is None or fields[0] in ("T", "t")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_requests_waiting_in_the_backlog_when_the_drain_ends_are_answered(start, backend, workers):
    server = start(
        "--noreload",
        "--backend",
        backend,
        "--workers",
        workers,
        "--drain-delay",
        "0.5",
        "--graceful-timeout",
        "10",
    ).wait_serving()
    # Every worker forked before the test stops them all: one started later would accept.
    wait_workers_answering(server, int(workers))
    supervisor = server.process.pid
    children = [pid for pid in server.group_pids() if pid != supervisor]
    outcomes: list[tuple[int, int] | str] = []

    def post(size: int) -> None:
        try:
            response = httpx.post(f"{server.url}/body-size/", content=b"x" * size, timeout=DEADLINE)
            outcomes.append((response.status_code, response.json()["size"]))
        except httpx.HTTPError as error:
            outcomes.append(repr(error))

    clients = [threading.Thread(target=post, args=(n,), daemon=True) for n in range(1, WAITING + 1)]
    for pid in children:
        os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(
            lambda: all(stopped(pid) for pid in children), what="the server's children stopped"
        )
        for client in clients:
            client.start()
        wait_for(lambda: listen_backlog(server.port) >= WAITING, what="the requests in the backlog")
        os.kill(supervisor, signal.SIGTERM)
        # The delay ends: the port holds new connections off (or, were it shut down now, the
        # requests waiting would be reset).
        wait_for(
            lambda: outcomes or new_connection(server.port) != "accepted",
            what="the end of the drain delay",
        )
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    for client in clients:
        client.join(DEADLINE)
    code = server.wait_exit()
    assert sorted(outcomes, key=str) == [(200, n) for n in range(1, WAITING + 1)], (
        outcomes,
        server.output,
    )
    assert code == 0, server.output
    assert "Traceback" not in server.output, server.output
