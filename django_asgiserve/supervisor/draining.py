"""``--drain-delay``: its start (the workers told to drain, the stop put off for the delay) and
its end: the backlog emptied, the port refusing new connections, then the workers stopping.

Without this the supervisor's copy of each listening socket keeps the port open through the
workers' grace period: connections a balancer makes meanwhile wait in the backlog and are reset
when the sockets close, after the balancer has sent a request it must not resend (a POST).
Shut down, the socket refuses new connections at once (a refused connection is one a balancer
retries elsewhere, a POST too), while the workers finish what they accepted within the grace.

Shutting a socket down resets what its backlog still holds as well: a connection the kernel
completed after a worker's last ``accept()`` (or while its event loop was busy) would be reset
with its request sent. So the end of the delay first holds new connections off
(:func:`~django_asgiserve.backlog.hold_new_connections`) while the workers, still serving,
accept what waits, and only then stops them and shuts the sockets down.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterable, Sequence
from typing import Protocol

from django_asgiserve import backlog
from django_asgiserve.supervisor.clock import Clock
from django_asgiserve.supervisor.events import DrainOver

#: Seconds to wait for the workers to say they stopped accepting before the port refuses anyway.
STOPPING_TIMEOUT = 1.0
#: Seconds the workers get to accept what waits in the backlog at the end of the delay: a
#: serving worker takes it at once; one whose event loop is blocked longer loses it.
BACKLOG_TIMEOUT = 2.0
#: How often the end of a drain looks whether the workers have accepted the backlog.
BACKLOG_POLL_SECONDS = 0.005


class StoppingWorker(Protocol):
    stopping_seen: asyncio.Event


class DrainingWorker(Protocol):
    def drain(self) -> None: ...


class Drain:
    """A supervisor's ``--drain-delay``: whether it has begun, and its steps.

    ``owns_port`` is False for sockets from systemd: the manager keeps that port open and queues
    connections for the next start, so neither a filter nor a shutdown may touch it.
    """

    def __init__(self, sockets: Sequence[socket.socket], delay: float, *, owns_port: bool) -> None:
        self.sockets = sockets
        self.delay = delay
        self.owns_port = owns_port
        #: Whether SIGTERM began the drain (the stop then comes after the delay).
        self.active = False

    def begin(self, workers: Iterable[DrainingWorker]) -> None:
        """The workers keep serving (their health path says 503) for the delay, so that a
        balancer takes the host out of rotation; see :meth:`wait`."""
        self.active = True
        for worker in workers:
            worker.drain()

    async def wait(self, clock: Clock) -> DrainOver:
        """The delay itself, then what waits in the backlog accepted: then the stop may come."""
        await clock.sleep(self.delay)
        if self.owns_port:
            await empty_backlogs(self.sockets, BACKLOG_TIMEOUT)
        return DrainOver()

    async def close_port(self, workers: Sequence[StoppingWorker]) -> None:
        """The stop's step once the drain is over: the port refuses new connections as soon
        as the workers stop accepting (nothing when the drain never began)."""
        if self.active and self.owns_port:
            await refuse_when_stopping(workers, self.sockets)


async def empty_backlogs(sockets: Sequence[socket.socket], timeout: float) -> None:
    """Hold new connections to ``sockets`` off, and return once the workers have accepted those
    already queued (or after ``timeout`` seconds: a worker whose loop is blocked)."""
    held = [sock for sock in sockets if backlog.hold_new_connections(sock)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    # The kernel tells the backlog's length but not when it empties: look until it has.
    while any(backlog.queued(sock) for sock in held) and loop.time() < deadline:
        await asyncio.sleep(BACKLOG_POLL_SECONDS)


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
