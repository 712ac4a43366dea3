"""The fork model: the first workers are forked from the management command itself, which has set
Django up already, so the site is served without waiting for a new interpreter; every later one is
forked by a preloader (:mod:`preloader_set`), which boots once the first workers serve.

A change to something the preloader imported, or SIGHUP, needs a fresh preloader; the old one is
retired once the workers it forked have gone. A preloader that cannot fork (the project's start-up
left threads running) becomes the one worker it is asked for, so every worker then costs a new
interpreter.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path

from django_asgiserve import platforms
from django_asgiserve.run_config import ServerConfig
from django_asgiserve.supervisor.children import StreamConnection, Worker
from django_asgiserve.supervisor.clock import Clock
from django_asgiserve.supervisor.events import Event, WorkerGone, follow
from django_asgiserve.supervisor.preloader_set import PreloaderSet
from django_asgiserve.supervisor.preloaders import Preloader
from django_asgiserve.supervisor.tasks import Tasks

#: Tries, a tenth of a second apart, to collect the exit status of a worker forked here.
REAP_TRIES = 20


class ForkLauncher:
    """Starts workers by forking them; implements
    :class:`~django_asgiserve.supervisor.launches.Launcher`."""

    def __init__(
        self,
        config: ServerConfig,
        sockets: Sequence[socket.socket],
        *,
        socket_per_worker: bool,
        private: Sequence[socket.socket],
        post: Callable[[Event], None],
        tasks: Tasks,
        clock: Clock,
        warn: Callable[[str], None],
        unsafe: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        #: Told why when fork proves unsafe (see :mod:`switching_model`); None: fork regardless.
        self.unsafe = unsafe
        #: Whether worker ``k`` serves ``sockets[k]`` alone (SO_REUSEPORT twins).
        self.socket_per_worker = socket_per_worker
        #: The supervisor's own sockets, which a worker forked here closes.
        self.private = private
        self.post = post
        self.tasks = tasks
        self.clock = clock
        self.preloaders = PreloaderSet(
            config, sockets, tasks=tasks, clock=clock, warn=warn, unsafe=unsafe
        )
        #: The first workers, forked before the event loop: (pid, our end, seat).
        self.stock: list[tuple[int, socket.socket, int]] = []
        self.readers: set[asyncio.Task[None]] = set()

    def slot(self, seat: int) -> int | None:
        return seat if self.socket_per_worker else None

    def prepare(self, seats: int, generation: str) -> None:
        """Fork the first workers from this process, only before any thread has started."""
        if not platforms.can_fork() or threading.active_count() > 1:
            return
        from django_asgiserve import backends
        from django_asgiserve.process import forking

        backend = backends.get(self.config.backend)(self.config)
        # The command runs the start-up checks itself: these workers need not repeat them.
        config = replace(self.config, skip_checks=True, generation=generation)
        for seat in range(seats):
            ours, theirs = socket.socketpair()
            siblings = [sock for _pid, sock, _seat in self.stock]
            pid = forking.fork_worker(
                config.for_slot(self.slot(seat)),
                backend,
                theirs,
                close=[*siblings, *self.private, ours],
            )
            theirs.close()
            self.stock.append((pid, ours, seat))

    async def start(
        self,
        seats: Sequence[int],
        generation: str,
        *,
        fresh: bool,
        changed: Collection[Path],
        started: Callable[[Worker], None],
    ) -> str:
        if self.stock and not fresh:
            stock, self.stock = self.stock, []
            for pid, sock, seat in stock:
                worker = await self.connect(sock, pid, seat, generation, None)
                if seat in seats:
                    started(worker)
                else:
                    worker.kill()
            return "fork"
        preloader = None if fresh else await self.preloaders.usable(changed)
        imported = preloader is None
        new: list[Preloader] = []
        try:
            for seat in seats:
                if preloader is None or (preloader.used and not preloader.can_fork):
                    preloader = await self.preloaders.new()
                    new.append(preloader)
                if not await preloader.boot():
                    break
                forked = await preloader.fork(self.slot(seat), generation)
                if forked is not None:
                    worker = await self.connect(*forked, seat, generation, preloader)
                    preloader.workers.add(worker)
                    started(worker)
        finally:
            for each in new:  # abandoned, or dead before it booted
                if not each.workers:
                    self.preloaders.retire(each)
        return "preloader started" if imported else "fork"

    async def connect(
        self, sock: socket.socket, pid: int, seat: int, generation: str, origin: object
    ) -> Worker:
        connection, reader = await StreamConnection.open(sock, pid)
        worker = Worker(connection, seat, generation, origin)
        task = asyncio.ensure_future(self.read(worker, reader))
        self.readers.add(task)
        task.add_done_callback(self.readers.discard)
        return worker

    async def read(self, worker: Worker, reader: asyncio.StreamReader) -> None:
        try:
            await follow(worker, reader, self.post)
        finally:
            if not worker.loaded.done() and not worker.told_to_stop and self.unsafe is not None:
                self.unsafe("a forked worker died before it had loaded")
            if isinstance(worker.origin, Preloader):
                worker.origin.workers.discard(worker)
            else:  # our own child: collect its exit status
                self.tasks.start(self.reap(worker.pid), "reap")
            self.post(WorkerGone(worker))

    async def reap(self, pid: int) -> None:
        if sys.platform == "win32":  # never forked there
            return
        for _try in range(REAP_TRIES):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    return
            await self.clock.sleep(0.1)

    def warm_up(self) -> None:
        self.preloaders.warm_up()

    def installed(self, workers: Collection[Worker]) -> None:
        self.preloaders.installed(workers)

    def discard(self, workers: Collection[Worker]) -> None:
        self.preloaders.discard(workers)

    def learn(self, modules: list[str]) -> None:
        self.preloaders.learn(modules)

    async def stop(self) -> None:
        await self.preloaders.stop()

    def kill(self) -> None:
        for pid, _sock, _seat in self.stock:
            platforms.kill(pid)
        self.preloaders.kill()

    def close(self) -> None:
        for task in self.readers:
            task.cancel()
        self.preloaders.close()
        for _pid, sock, _seat in self.stock:
            sock.close()
