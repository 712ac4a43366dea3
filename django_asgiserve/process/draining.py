"""``--drain-delay``: its start (the workers told to drain, the stop put off for the delay) and
its end: the port refuses new connections, then the workers stop.

Without this the supervisor's copy of each listening socket keeps the port open through the
workers' grace period: connections a balancer makes meanwhile wait in the backlog and are reset
when the sockets close, after the balancer has sent a request it must not resend (a POST).
Shut down, the socket refuses new connections at once (a refused connection is one a balancer
retries elsewhere, a POST too), while the workers finish what they accepted within the grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from django_asgiserve.process.protocol import WorkerCommand

#: Seconds to wait for the workers to say they stopped accepting before the port refuses anyway.
STOPPING_TIMEOUT = 1.0


class StoppingWorker(Protocol):
    stopping_seen: asyncio.Event


class DrainingWorker(Protocol):
    def send(self, message: WorkerCommand) -> None: ...


def begin_drain(
    workers: Iterable[DrainingWorker], delay: float, stop: Callable[[], object]
) -> None:
    """The workers keep serving (their health path says 503) for ``delay`` seconds, so that a
    balancer takes the host out of rotation before ``stop``, the graceful stop."""
    for worker in workers:
        worker.send({"cmd": "drain"})
    asyncio.get_running_loop().call_later(delay, stop)


async def refuse_when_stopping(
    workers: Sequence[StoppingWorker], sockets: Sequence[socket.socket]
) -> None:
    """Shut ``sockets`` down once every worker has stopped accepting on them: a backend still
    waiting on a shut-down socket would report each failed accept."""
    waits = [asyncio.ensure_future(w.stopping_seen.wait()) for w in workers]
    if waits:
        await asyncio.wait(waits, timeout=STOPPING_TIMEOUT)
        for wait in waits:
            wait.cancel()
    refuse_new_connections(sockets)


def refuse_new_connections(sockets: Sequence[socket.socket]) -> None:
    """Stop the kernel from queueing connections on ``sockets`` (every process's copy)."""
    for sock in sockets:
        if sock.type == socket.SOCK_STREAM:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)
