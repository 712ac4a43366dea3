"""The fork model's preloaders (:mod:`preloaders`): the current one, which later workers are
forked from; the first one, booting while the first workers serve; new ones, for fresh code; and
old ones, retired once the workers they forked have gone. Workers tell which libraries they went
on to import, and the current preloader imports them for the next fork."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Collection, Sequence
from functools import partial
from pathlib import Path

from django_asgiserve.process.protocol import PreloaderEvent
from django_asgiserve.run_config import ServerConfig
from django_asgiserve.supervisor.children import StreamConnection, Worker, read_messages
from django_asgiserve.supervisor.clock import Clock
from django_asgiserve.supervisor.preloaders import Preloader, start_process
from django_asgiserve.supervisor.tasks import Tasks

NO_FORK = (
    "Fast reloads are off: starting the project left threads running (or this platform cannot "
    "fork), so each reload starts a new interpreter."
)


class PreloaderSet:
    def __init__(
        self,
        config: ServerConfig,
        sockets: Sequence[socket.socket],
        *,
        tasks: Tasks,
        clock: Clock,
        warn: Callable[[str], None],
        unsafe: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.sockets = sockets
        self.tasks = tasks
        self.clock = clock
        self.warn = warn
        self.unsafe = unsafe
        self.current: Preloader | None = None
        #: Every preloader still running.
        self.running: set[Preloader] = set()
        self.retiring: set[Preloader] = set()
        #: The first one, booting while the first workers serve (see :meth:`warm_up`).
        self.warming: asyncio.Task[object] | None = None
        self.readers: set[asyncio.Task[None]] = set()
        self.warned_no_fork = False

    async def usable(self, changed: Collection[Path]) -> Preloader | None:
        """The current preloader once it has booted, if it can fork workers with the code as
        it is after ``changed`` (it imported none of them, and did not break on one)."""
        if self.warming is not None:
            await asyncio.wait([self.warming])
        preloader = self.current
        if preloader is None or not await preloader.boot():
            return None
        if preloader.used and not preloader.can_fork:
            return None
        if preloader.broken or any(str(p.resolve()) in preloader.preloaded for p in changed):
            return None
        return preloader

    async def new(self) -> Preloader:
        """A new preloader, booting (the current one only once its workers serve)."""
        sock, process = start_process(self.config, self.sockets)
        connection, reader = await StreamConnection.open(sock, process.pid)
        preloader = Preloader(process, connection)
        self.running.add(preloader)
        task = asyncio.ensure_future(self.read(preloader, reader))
        self.readers.add(task)
        task.add_done_callback(self.readers.discard)
        return preloader

    async def read(self, preloader: Preloader, reader: asyncio.StreamReader) -> None:
        try:
            await read_messages(reader, partial(self.heard, preloader))
        finally:
            preloader.closed()

    def heard(self, preloader: Preloader, message: PreloaderEvent) -> None:
        preloader.received(message)
        booted = message["event"] == "booted"
        if booted and not preloader.can_fork and self.unsafe is not None:
            self.unsafe("starting the project left threads running")
        elif booted and not preloader.can_fork and self.config.reload and not self.warned_no_fork:
            self.warned_no_fork = True
            self.warn(NO_FORK)

    def warm_up(self) -> None:
        """Boot the first preloader now (not while the first workers compete for the CPU)."""
        if self.current is None and self.warming is None:
            self.warming = self.tasks.start(self.boot_first(), "preloader")

    async def boot_first(self) -> None:
        preloader = await self.new()
        if self.current is None:
            self.current = preloader
        else:
            self.retire(preloader)

    def installed(self, workers: Collection[Worker]) -> None:
        """``workers`` serve: the preloader that forked them is the current one."""
        origins = [w.origin for w in workers if isinstance(w.origin, Preloader)]
        if not origins or origins[-1] is self.current:
            return
        old, self.current = self.current, origins[-1]
        for each in {old, *origins[:-1]}:
            if each is not None and each is not self.current:
                self.retire(each)

    def discard(self, workers: Collection[Worker]) -> None:
        """``workers`` will never serve: retire their preloaders unless current."""
        for each in {w.origin for w in workers if isinstance(w.origin, Preloader)}:
            if each is not self.current:
                self.retire(each)

    def retire(self, preloader: Preloader) -> None:
        """Stop ``preloader`` once the workers it forked have gone."""
        if preloader not in self.retiring:
            self.retiring.add(preloader)
            self.tasks.start(self.retiring_one(preloader), "retire preloader")

    async def retiring_one(self, preloader: Preloader) -> None:
        if preloader.workers:
            await asyncio.wait([w.gone for w in preloader.workers])
        await preloader.stop(self.clock)
        self.running.discard(preloader)

    def learn(self, modules: list[str]) -> None:
        preloader = self.current
        if preloader is None or not preloader.has_booted or not preloader.can_fork:
            return
        new = set(modules) - preloader.taught
        if new:
            preloader.taught |= new
            self.tasks.start(preloader.teach(sorted(new)), "teach")

    async def stop(self) -> None:
        """Stop every preloader (after the workers: one that exits kills what it forked)."""
        if self.warming is not None:
            self.warming.cancel()
        await asyncio.gather(*(p.stop(self.clock) for p in self.running))
        self.running.clear()

    def kill(self) -> None:
        for preloader in self.running:
            preloader.kill()

    def close(self) -> None:
        for task in self.readers:
            task.cancel()
