"""The supervisor's view of its children: a preloader or a worker on the other end of a socket
pair, each with its own start, connection, commands and stop.

The messages they exchange are defined in :mod:`protocol`; what the supervisor does with them
(and when it starts or retires which child) is :mod:`supervisor`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from django_asgiserve import backends
from django_asgiserve.process import interrupts
from django_asgiserve.process import preloader as preloader_module
from django_asgiserve.process import worker as worker_module
from django_asgiserve.process.protocol import (
    BootedEvent,
    Channel,
    ForkedEvent,
    ImportedEvent,
    PreloaderCommand,
    ReadyEvent,
    WorkerChannel,
    WorkerCommand,
    encode,
)
from django_asgiserve.reload.changes import Classification
from django_asgiserve.run_config import ENVIRON_KEY, ServerConfig

#: Seconds a retired preloader gets to exit after its channel is closed.
PRELOADER_EXIT_TIMEOUT = 2.0

ChildT = TypeVar("ChildT", bound="Child")
#: Starts reading a child's messages (the supervisor's reader task).
Listen = Callable[["Child"], None]


@dataclass(eq=False)
class Child:
    """A process on the other end of a channel, as the supervisor sees it."""

    sock: socket.socket
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    closed: asyncio.Future[None]
    pid: int = 0

    @classmethod
    async def connect(cls: type[ChildT], sock: socket.socket, **fields: Any) -> ChildT:
        """The child on the other end of ``sock`` (our end of its socket pair)."""
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=2**26)
        closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        return cls(sock=sock, reader=reader, writer=writer, closed=closed, **fields)

    def send(self, message: PreloaderCommand | WorkerCommand) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode(message))

    def close(self) -> None:
        self.writer.close()


async def first_of(future: asyncio.Future[Any], closed: asyncio.Future[None]) -> None:
    await asyncio.wait([future, closed], return_when=asyncio.FIRST_COMPLETED)


@dataclass(eq=False)
class Preloader(Child):
    process: subprocess.Popen[bytes] | None = None
    booted: asyncio.Future[BootedEvent] | None = None
    can_fork: bool = False
    #: A preloader that cannot fork serves as the one worker itself, once.
    used: bool = False
    broken: bool = False
    preloaded: frozenset[str] = frozenset()
    workers: set[Worker] = field(default_factory=set)
    #: Commands wait for the previous one's answer (the preloader reads them with descriptors).
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    answer: asyncio.Future[ForkedEvent | ImportedEvent] | None = None
    taught: set[str] = field(default_factory=set)

    @classmethod
    async def start(
        cls, config: ServerConfig, sockets: Sequence[socket.socket], listen: Listen
    ) -> Preloader:
        """A new preloader process for ``sockets``, once it has booted (or died trying)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fds = [s.fileno() for s in sockets]
        env = {
            **os.environ,
            ENVIRON_KEY: replace(config, socket_fds=fds).to_environ(),
            preloader_module.CHANNEL_FD_KEY: str(theirs.fileno()),
        }
        with interrupts.deferred():
            process = subprocess.Popen(
                [*interpreter_arguments(), "-c", preloader_module.BOOTSTRAP],
                env=env,
                pass_fds=[*fds, theirs.fileno(), *config.board_fds],
            )
        theirs.close()
        preloader = await cls.connect(ours, process=process, pid=process.pid)
        booted: asyncio.Future[BootedEvent] = asyncio.get_running_loop().create_future()
        preloader.booted = booted
        listen(preloader)
        await first_of(booted, preloader.closed)
        if booted.done():
            preloader.can_fork = booted.result()["can_fork"]
            preloader.broken = booted.result()["broken"]
            preloader.preloaded = frozenset(booted.result()["preloaded"])
        return preloader

    @property
    def has_booted(self) -> bool:
        return self.booted is not None and self.booted.done() and not self.closed.done()

    async def command(
        self, message: PreloaderCommand, fds: Sequence[int] = ()
    ) -> ForkedEvent | ImportedEvent | None:
        """Send a command and wait for its answer; ``None`` if the preloader is gone."""
        async with self.lock:
            if self.closed.done():
                return None
            answer: asyncio.Future[ForkedEvent | ImportedEvent]
            self.answer = answer = asyncio.get_running_loop().create_future()
            try:
                # One short message on an idle socket: this never blocks.
                socket.send_fds(self.sock, [encode(message)], list(fds))
            except OSError:
                return None
            await first_of(answer, self.closed)
            return answer.result() if answer.done() else None

    async def fork(self, slot: int | None, generation: str) -> socket.socket | None:
        """Our end of a new worker's channel (the worker serves ``slot``'s socket, or every
        one, for ``generation``); ``None`` if the preloader could not fork one."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.used = True
        try:
            command: PreloaderCommand = {"cmd": "fork", "slot": slot, "generation": generation}
            forked = await self.command(command, [theirs.fileno()])
        finally:
            theirs.close()
        if forked is None and not self.can_fork:
            return ours  # it became the worker itself: no answer comes
        if forked is None:
            ours.close()
            return None
        return ours

    async def stop(self) -> None:
        self.close()
        if self.process is None:
            return
        try:
            await asyncio.wait_for(asyncio.to_thread(self.process.wait), PRELOADER_EXIT_TIMEOUT)
        except TimeoutError:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)


@dataclass(eq=False)
class Worker(Child):
    preloader: Preloader | None = None
    ready: asyncio.Future[ReadyEvent] | None = None
    stopping: bool = False
    replies: dict[int, asyncio.Future[Classification]] = field(default_factory=dict)
    #: With a socket per worker, the index of this worker's socket; None: it serves them all.
    slot: int | None = None
    #: Set when it says it stopped accepting (see :mod:`draining`).
    stopping_seen: asyncio.Event = field(default_factory=asyncio.Event)

    @classmethod
    async def started(
        cls,
        sock: socket.socket,
        listen: Listen,
        *,
        pid: int = 0,
        slot: int | None = None,
        preloader: Preloader | None = None,
        when_closed: Callable[[], object] | None = None,
    ) -> Worker | None:
        """The worker on ``sock`` once it is ready to serve; ``None`` if it died before."""
        worker = await cls.connect(sock, pid=pid, slot=slot, preloader=preloader)
        ready: asyncio.Future[ReadyEvent] = asyncio.get_running_loop().create_future()
        worker.ready = ready
        if preloader is not None:
            preloader.workers.add(worker)
        listen(worker)
        if when_closed is not None:
            worker.closed.add_done_callback(lambda _: when_closed())
        await first_of(ready, worker.closed)
        if not ready.done():
            return None
        worker.pid = ready.result()["pid"]
        return worker

    @property
    def is_broken(self) -> bool:
        """Whether it serves an error page rather than the project."""
        return self.ready is None or self.ready.result()["broken"]

    async def stop(self, timeout: float) -> None:
        """Stop it gracefully, or kill it after ``timeout`` seconds."""
        self.stopping = True
        self.send({"cmd": "stop"})
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            if self.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
            await self.closed
        self.close()


def fork_here(
    config: ServerConfig,
    sockets: Sequence[socket.socket],
    slots: Sequence[int | None],
    private: Sequence[socket.socket] = (),
) -> list[tuple[int, socket.socket, int | None]]:
    """Fork workers from this process, which has set Django up already: the site is served
    without waiting for a new interpreter. Only before any thread has started (else: none).
    ``private``: this process's own sockets, which the workers close."""
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return []
    backend = backends.get(config.backend)(config)
    forked: list[tuple[int, socket.socket, int | None]] = []
    for slot in slots:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with interrupts.deferred():
            pid = os.fork()
        if pid == 0:
            for _pid, sibling, _slot in forked:
                sibling.close()
            for sock in private:
                sock.close()
            ours.close()
            channel: WorkerChannel = Channel(theirs)
            worker_module.run(config.for_slot(slot), backend, channel, None)
        theirs.close()
        forked.append((pid, ours, slot))
    return forked


def interpreter_arguments() -> list[str]:
    """This interpreter with its warning and ``-X`` options, as Django's reloader passes them."""
    arguments = [sys.executable, *(f"-W{option}" for option in sys.warnoptions)]
    if sys.implementation.name == "cpython":
        arguments += [
            f"-X{key}" if value is True else f"-X{key}={value}"
            for key, value in sys._xoptions.items()
        ]
    return arguments
