"""The fork model's preloader, as the supervisor sees it: a fresh interpreter that imports the
project once (:mod:`django_asgiserve.process.preloader`), then forks a worker per ``fork``
command. Its commands wait for the previous one's answer: it reads them with descriptors."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from django_asgiserve import platforms
from django_asgiserve.process import interrupts
from django_asgiserve.process import preloader as preloader_process
from django_asgiserve.process.protocol import (
    BootedEvent,
    ForkedEvent,
    ImportedEvent,
    PreloaderCommand,
    PreloaderEvent,
    encode,
)
from django_asgiserve.run_config import ENVIRON_KEY, ServerConfig
from django_asgiserve.supervisor.children import StreamConnection, Worker, future
from django_asgiserve.supervisor.clock import Clock, first_done, wait_for

#: Seconds a retired preloader gets to exit after its channel is closed.
PRELOADER_EXIT_TIMEOUT = 2.0

Answer = ForkedEvent | ImportedEvent


@dataclass(eq=False)
class Preloader:
    process: subprocess.Popen[bytes]
    connection: StreamConnection
    booted: asyncio.Future[BootedEvent] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    gone: asyncio.Future[None] = field(default_factory=future)
    can_fork: bool = False
    #: A preloader that cannot fork becomes the one worker it is first asked for.
    used: bool = False
    broken: bool = False
    preloaded: frozenset[str] = frozenset()
    #: Modules it was asked to import (see :meth:`teach`).
    taught: set[str] = field(default_factory=set)
    #: The workers it forked that have not gone yet.
    workers: set[Worker] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    answer: asyncio.Future[Answer] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def has_booted(self) -> bool:
        return self.booted.done() and not self.gone.done()

    async def boot(self) -> bool:
        """Whether it has booted (waiting for it to, or to die trying)."""
        await first_done(self.booted, self.gone)
        return self.has_booted

    def received(self, message: PreloaderEvent) -> None:
        if message["event"] == "booted":
            self.can_fork = message["can_fork"]
            self.broken = message["broken"]
            self.preloaded = frozenset(message["preloaded"])
            if not self.booted.done():
                self.booted.set_result(message)
        elif self.answer is not None and not self.answer.done():
            self.answer.set_result(message)

    def closed(self) -> None:
        if not self.gone.done():
            self.gone.set_result(None)

    async def command(self, message: PreloaderCommand, fds: Sequence[int] = ()) -> Answer | None:
        """Send a command and wait for its answer; ``None`` if the preloader is gone. A caller
        that is cancelled leaves the exchange to finish, so that a late answer is never taken
        for the next command's."""
        return await asyncio.shield(self.exchange(message, fds))

    async def exchange(self, message: PreloaderCommand, fds: Sequence[int]) -> Answer | None:
        async with self.lock:
            if self.gone.done():
                return None
            answer: asyncio.Future[Answer]
            self.answer = answer = asyncio.get_running_loop().create_future()
            if sys.platform == "win32":  # no preloader there: it forks
                return None
            try:
                # One short message on an idle socket: this never blocks.
                socket.send_fds(self.connection.sock, [encode(message)], list(fds))
            except OSError:
                return None
            await first_done(answer, self.gone)
            return answer.result() if answer.done() else None

    async def fork(self, slot: int | None, generation: str) -> tuple[socket.socket, int] | None:
        """Our end of a new worker's channel and its pid (the worker serves ``slot``'s socket,
        or every one, for ``generation``); ``None`` if the preloader could not fork one."""
        ours, theirs = socket.socketpair()
        self.used = True
        command: PreloaderCommand = {"cmd": "fork", "slot": slot, "generation": generation}
        exchange = asyncio.ensure_future(self.exchange(command, [theirs.fileno()]))
        try:
            forked = await asyncio.shield(exchange)
        except asyncio.CancelledError:
            ours.close()  # the worker it forks finds its channel closed...
            exchange.add_done_callback(kill_forked)  # ... and is killed once its pid is known
            raise
        finally:
            theirs.close()
        if forked is None and not self.can_fork:
            return ours, self.pid  # it became the worker itself: no answer comes
        if forked is None or forked["event"] != "forked":
            ours.close()
            return None
        return ours, forked["pid"]

    async def teach(self, modules: list[str]) -> None:
        """Have it import library ``modules`` that workers went on to import."""
        answer = await self.command({"cmd": "import", "modules": modules})
        if answer is not None and answer["event"] == "imported":
            self.can_fork = answer["can_fork"]
            self.preloaded = frozenset(answer["preloaded"])

    async def stop(self, clock: Clock) -> None:
        """Close its channel (it then kills what it forked and exits), or kill it."""
        self.connection.close()
        exited = asyncio.ensure_future(asyncio.to_thread(self.process.wait))
        if not await wait_for(clock, exited, PRELOADER_EXIT_TIMEOUT):
            self.kill()
            await exited

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


def kill_forked(exchange: asyncio.Future[Answer | None]) -> None:
    """Kill the worker a cancelled ``fork`` command made."""
    answer = None if exchange.cancelled() or exchange.exception() else exchange.result()
    if answer is not None and answer["event"] == "forked":
        platforms.kill(answer["pid"])


def start_process(
    config: ServerConfig, sockets: Sequence[socket.socket]
) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """Start a preloader process for ``sockets``; our end of its channel, and the process."""
    ours, theirs = socket.socketpair()
    fds = [s.fileno() for s in sockets]
    env = {
        **os.environ,
        ENVIRON_KEY: replace(config, socket_fds=fds).to_environ(),
        preloader_process.CHANNEL_FD_KEY: str(theirs.fileno()),
    }
    with interrupts.deferred():
        process = subprocess.Popen(
            [*interpreter_arguments(), "-c", preloader_process.BOOTSTRAP],
            env=env,
            pass_fds=[*fds, theirs.fileno(), *config.board_fds],
        )
    theirs.close()
    return ours, process


def interpreter_arguments() -> list[str]:
    """This interpreter with its warning and ``-X`` options, as Django's reloader passes them."""
    arguments = [sys.executable, *(f"-W{option}" for option in sys.warnoptions)]
    if sys.implementation.name == "cpython":
        arguments += [
            f"-X{key}" if value is True else f"-X{key}={value}"
            for key, value in sys._xoptions.items()
        ]
    return arguments
