"""The spawn model: each worker is a fresh interpreter (:mod:`django_asgiserve.process.spawned`)
that imports the project itself and runs the same worker code as a forked one, handed its
channel and sockets by :mod:`~django_asgiserve.process.handover`. Every start imports new code.

With the reloader, once workers serve, a *spare* per seat is spawned: an interpreter that has
imported Django's and the server's libraries and waits to be told which code to load, so that a
reload costs the project's import, not an interpreter's start-up as well. SIGHUP (fresh code)
lets them go and starts new interpreters.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from pathlib import Path

from django_asgiserve.process import handover, spawned
from django_asgiserve.process.protocol import encode
from django_asgiserve.run_config import ENVIRON_KEY, ServerConfig
from django_asgiserve.supervisor.children import StreamConnection, Worker
from django_asgiserve.supervisor.clock import Clock
from django_asgiserve.supervisor.events import Event, WorkerGone, follow
from django_asgiserve.supervisor.preloaders import interpreter_arguments
from django_asgiserve.supervisor.tasks import Tasks

#: Tries, a tenth of a second apart, to collect a spawned worker's exit status.
REAP_TRIES = 20

#: A spawned child that is not a worker yet, and our end of its channel.
Spare = tuple[handover.Spawned, socket.socket]


class SpawnedConnection(StreamConnection):
    """A spawned worker's channel; killing it kills its process (on every platform)."""

    def __init__(self, sock: socket.socket, writer: asyncio.StreamWriter, child: handover.Spawned):
        super().__init__(sock, writer, child.process.pid)
        self.child = child

    def kill(self) -> None:
        if self.child.process.poll() is None:
            self.child.process.kill()


class SpawnLauncher:
    """Starts each worker in a new interpreter; implements
    :class:`~django_asgiserve.supervisor.launches.Launcher`."""

    def __init__(
        self,
        config: ServerConfig,
        sockets: Sequence[socket.socket],
        *,
        socket_per_worker: bool,
        post: Callable[[Event], None],
        tasks: Tasks,
        clock: Clock,
    ) -> None:
        self.config = config
        self.sockets = sockets
        #: Whether worker ``k`` serves ``sockets[k]`` alone (SO_REUSEPORT twins).
        self.socket_per_worker = socket_per_worker
        self.post = post
        self.tasks = tasks
        self.clock = clock
        self.first_generation = ""
        #: Seats: how many spares to keep.
        self.seats = 1
        self.spares: list[Spare] = []
        self.children: set[handover.Spawned] = set()
        self.readers: set[asyncio.Task[None]] = set()

    def prepare(self, seats: int, generation: str) -> None:
        """Nothing to start before the event loop: no process is forked. The command runs the
        start-up checks itself: the first generation's workers need not repeat them."""
        self.first_generation = generation
        self.seats = seats

    async def start(
        self,
        seats: Sequence[int],
        generation: str,
        *,
        fresh: bool,
        changed: Collection[Path],
        started: Callable[[Worker], None],
    ) -> str:
        if fresh:  # the libraries the spares imported may have changed (SIGHUP: an upgrade)
            self.drop_spares()
        for seat in seats:
            started(await self.spawn(seat, generation))
        return "spawned"

    async def spawn(self, seat: int, generation: str) -> Worker:
        """A worker for ``seat``: a spare told to begin, or a new interpreter."""
        slot = seat if self.socket_per_worker else None
        spare = self.take_spare()
        if spare is not None:
            child, ours = spare
            # One short message on an idle socket: this never blocks.
            ours.sendall(encode({"cmd": "begin", "generation": generation, "slot": slot}))
        else:
            first = generation == self.first_generation
            skip_checks = first or self.config.skip_checks
            config = replace(self.config, generation=generation, skip_checks=skip_checks)
            child, ours = self.start_child(config.for_slot(slot), spare=False)
        opened, reader = await StreamConnection.open(ours, child.process.pid)
        worker = Worker(SpawnedConnection(ours, opened.writer, child), seat, generation, child)
        task = asyncio.ensure_future(self.read(worker, reader, child))
        self.readers.add(task)
        task.add_done_callback(self.readers.discard)
        return worker

    def start_child(self, config: ServerConfig, *, spare: bool) -> Spare:
        """A new interpreter serving ``config``'s sockets; a spare waits for ``begin``."""
        sockets = [self.sockets[self.config.socket_fds.index(fd)] for fd in config.socket_fds]
        ours, theirs = socket.socketpair()
        env = {**os.environ, ENVIRON_KEY: config.to_environ()}
        if spare:
            env[spawned.SPARE_KEY] = "1"
        try:
            child = handover.spawn(
                [*interpreter_arguments(), "-c", spawned.BOOTSTRAP],
                env,
                theirs,
                sockets,
                [*config.socket_fds, *config.board_fds],
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.children.add(child)
        return child, ours

    def take_spare(self) -> Spare | None:
        """A spare still alive, if there is one."""
        while self.spares:
            spare = self.spares.pop(0)
            if spare[0].process.poll() is None:
                return spare
            self.let_go(spare)
        return None

    def stock_spares(self) -> None:
        """One spare per seat, for the next reload (with the reloader only)."""
        while self.config.reload and len(self.spares) < self.seats:
            self.spares.append(self.start_child(replace(self.config, generation=""), spare=True))

    def drop_spares(self) -> None:
        spares, self.spares = self.spares, []
        for spare in spares:
            self.let_go(spare)

    def let_go(self, spare: Spare) -> None:
        """Close a spare's channel (it exits), and collect its exit status."""
        spare[1].close()
        self.tasks.start(self.reap(spare[0]), "reap")

    async def read(
        self, worker: Worker, reader: asyncio.StreamReader, child: handover.Spawned
    ) -> None:
        try:
            await follow(worker, reader, self.post)
        finally:
            self.tasks.start(self.reap(child), "reap")
            self.post(WorkerGone(worker))

    async def reap(self, child: handover.Spawned) -> None:
        """Collect its exit status, then let go of it (its lifeline ends it if it lingers)."""
        for _try in range(REAP_TRIES):
            if child.process.poll() is not None:
                break
            await self.clock.sleep(0.1)
        child.release()
        self.children.discard(child)

    def warm_up(self) -> None:
        """The first workers serve: spares for the first reload."""
        self.stock_spares()

    def installed(self, workers: Collection[Worker]) -> None:
        """New workers serve: spares for the next reload."""
        self.stock_spares()

    def discard(self, workers: Collection[Worker]) -> None:
        """Nothing was started for them alone."""

    def learn(self, modules: list[str]) -> None:
        """Each worker imports what it needs itself."""

    async def stop(self) -> None:
        """The spares are let go (the workers are the supervisor's to stop)."""
        self.drop_spares()

    def kill(self) -> None:
        for child in self.children:
            if child.process.poll() is None:
                child.process.kill()

    def close(self) -> None:
        for task in self.readers:
            task.cancel()
        for _child, sock in self.spares:
            sock.close()
        for child in self.children:
            child.release()
