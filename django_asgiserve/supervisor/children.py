"""The supervisor's view of a worker: its seat, its code, what it was told and whether it has
gone, over a :class:`Connection` (its channel and its process) the process model provides.

The messages are :mod:`~django_asgiserve.process.protocol`'s; answers to the supervisor's own
questions (``classified``, ``stopping``, ``loaded``) settle futures here, every other message
becomes one of the supervisor's events (:func:`~django_asgiserve.supervisor.events.worker_event`).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar, cast

from django_asgiserve import platforms
from django_asgiserve.process.protocol import (
    LoadedEvent,
    PreloaderCommand,
    PreloaderEvent,
    WorkerCommand,
    WorkerEvent,
    decode,
    encode,
)
from django_asgiserve.reload.changes import Classification
from django_asgiserve.supervisor.clock import Clock, wait_for

#: Seconds to wait for a killed child's channel to close.
KILL_WAIT = 2.0
#: The most a channel's line may be (a ``watch`` of a big project is long).
LINE_LIMIT = 2**26

Incoming = TypeVar("Incoming", bound=WorkerEvent | PreloaderEvent)


class Connection(Protocol):
    """The supervisor's end of one child's channel, and the child's process."""

    pid: int

    def send(self, message: PreloaderCommand | WorkerCommand) -> None: ...

    def close(self) -> None: ...

    def kill(self) -> None:
        """SIGKILL the process, at once."""
        ...


class StreamConnection:
    """A child's channel as an asyncio stream over our end of its socket pair."""

    def __init__(self, sock: socket.socket, writer: asyncio.StreamWriter, pid: int) -> None:
        self.sock = sock
        self.writer = writer
        self.pid = pid

    @classmethod
    async def open(
        cls, sock: socket.socket, pid: int
    ) -> tuple[StreamConnection, asyncio.StreamReader]:
        # open_connection, not open_unix_connection: a Windows channel is a TCP socket pair.
        reader, writer = await asyncio.open_connection(sock=sock, limit=LINE_LIMIT)
        return cls(sock, writer, pid), reader

    def send(self, message: PreloaderCommand | WorkerCommand) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode(message))

    def close(self) -> None:
        self.writer.close()

    def kill(self) -> None:
        if self.pid:
            platforms.kill(self.pid)


async def read_messages(reader: asyncio.StreamReader, receive: Callable[[Incoming], None]) -> None:
    """Hand each message of a channel to ``receive`` until the channel closes (what a child
    sends is the protocol's to say: ``Incoming``, its kind of events)."""
    try:
        while line := await reader.readline():
            receive(cast(Incoming, decode(line)))
    except (ConnectionError, ValueError):
        pass


def future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


@dataclass(eq=False)
class Worker:
    """A worker as the supervisor sees it."""

    connection: Connection
    #: Its place among the serving workers: 0 to --workers - 1.
    seat: int
    #: The reload its code belongs to (see :mod:`~django_asgiserve.asgi.tab_reload`).
    generation: str
    #: What forked it, for the process model (the fork model: its preloader).
    origin: object = None
    loaded: asyncio.Future[LoadedEvent] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    gone: asyncio.Future[None] = field(default_factory=future)
    told_to_serve: bool = False
    told_to_stop: bool = False
    #: Set when it says it stopped accepting (see :mod:`draining`), or has gone.
    stopping_seen: asyncio.Event = field(default_factory=asyncio.Event)
    replies: dict[int, asyncio.Future[Classification]] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.connection.pid

    @property
    def broken(self) -> bool:
        """Whether it serves the error page rather than the project (or has not loaded)."""
        return not self.loaded.done() or self.loaded.result()["broken"]

    def serve(self, since: float | None = None) -> None:
        """Serve now; ``since``: when the edit this worker loaded was seen."""
        self.told_to_serve = True
        self.connection.send({"cmd": "serve", "since": since})

    def drain(self) -> None:
        self.connection.send({"cmd": "drain"})

    def ask(self, request_id: int, paths: list[str]) -> asyncio.Future[Classification]:
        """Ask what ``paths`` changing means; the future of its answer."""
        reply: asyncio.Future[Classification] = asyncio.get_running_loop().create_future()
        if self.gone.done():
            reply.set_result(("reload", []))
            return reply
        self.replies[request_id] = reply
        self.connection.send({"cmd": "changed", "id": request_id, "paths": paths})
        return reply

    async def stop(self, clock: Clock, timeout: float) -> None:
        """Stop it gracefully, or kill it after ``timeout`` seconds; one that was never told to
        serve has nothing to finish and is killed at once."""
        self.told_to_stop = True
        if self.told_to_serve:
            self.connection.send({"cmd": "stop"})
            if await wait_for(clock, self.gone, timeout):
                self.connection.close()
                return
        self.kill()
        await wait_for(clock, self.gone, KILL_WAIT)
        self.connection.close()

    def kill(self) -> None:
        self.told_to_stop = True
        if not self.gone.done():
            self.connection.kill()

    def received(self, message: WorkerEvent) -> WorkerEvent | None:
        """Settle what ``message`` answers; the message itself when it is news for the
        supervisor."""
        if message["event"] == "loaded":
            if not self.loaded.done():
                self.loaded.set_result(message)
        elif message["event"] == "classified":
            reply = self.replies.pop(message["id"], None)
            if reply is not None and not reply.done():
                reply.set_result((message["action"], message["paths"]))
            return message  # its ``learned`` modules are news
        elif message["event"] == "stopping":
            self.stopping_seen.set()
        else:
            return message
        return None

    def closed(self) -> None:
        """Its channel has closed: it is gone, and answers nothing more."""
        self.stopping_seen.set()
        if not self.gone.done():
            self.gone.set_result(None)
        for reply in self.replies.values():
            if not reply.done():
                reply.set_result(("reload", []))
        self.replies.clear()
