"""The supervisor: the process the user started. It holds the listening sockets for its whole
life and swaps the processes that serve them.

A preloader process imports everything that does not change between edits and forks workers
from it. On an edit the supervisor asks every serving worker whether the change matters
(Django's ``file_changed`` receivers may handle it without a restart, in each of them), forks a
new worker, waits until it is ready and only then retires the old one; a change to something
the preloader itself imported starts a new preloader first. The port is never closed, so a
request made meanwhile waits in the listen backlog and is answered by whichever worker is ready.
Nothing here imports user code.

Like gunicorn's arbiter: one loop per child reads its messages and dispatches each event to a
``handle_*`` method by table (in :mod:`events`); the pool's verbs are :meth:`Pool.spawn`,
:meth:`Pool.retire` and :meth:`Pool.replace_crashed` (in :mod:`pool`), the reaction to edits is
in :mod:`edits`, the drain after SIGTERM in :mod:`draining`. This module is the life cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from django_asgiserve import backends
from django_asgiserve.asgi.tab_reload import new_generation
from django_asgiserve.process import draining, failfast
from django_asgiserve.process.children import Child, Preloader, Worker, fork_here
from django_asgiserve.process.edits import EditHandling
from django_asgiserve.process.events import ChildEvents
from django_asgiserve.process.metrics_listener import MetricsListener
from django_asgiserve.process.pool import Say
from django_asgiserve.process.worker_tally import WorkerTally
from django_asgiserve.reload.watcher import Watcher
from django_asgiserve.run_config import ServerConfig

FirstWorker = tuple[int, socket.socket, int | None]


class Supervisor(ChildEvents, EditHandling):
    """Runs preloaders and workers over ``sockets`` until SIGINT or SIGTERM."""

    def __init__(
        self,
        config: ServerConfig,
        sockets: list[socket.socket],
        *,
        say: Say,
        warn: Say,
        excluded_dirs: list[Path],
        initial_roots: set[Path],
        socket_per_worker: bool = False,
        metrics_socket: socket.socket | None = None,
        activated: bool = False,
    ) -> None:
        self.config = config
        #: Starts, exits and reloads, for --metrics.
        self.tally = WorkerTally()
        #: --metrics: the supervisor's listener and the board every serving process counts on.
        self.metrics = (
            MetricsListener(metrics_socket, lambda: self.tally.figures(len(self.workers)))
            if metrics_socket is not None
            else None
        )
        if self.metrics is not None:
            self.config = replace(config, metrics_fd=self.metrics.board.fd)
        #: asgiserve workers to run: one when the backend runs ``config.workers`` itself.
        self.worker_count = (
            1 if backends.backend_class(config.backend).manages_workers else config.workers
        )
        self.sockets = sockets
        #: Whether worker ``k`` serves ``sockets[k]`` alone (SO_REUSEPORT twins, one per
        #: worker) rather than every worker serving every socket.
        self.socket_per_worker = socket_per_worker
        self.say = say
        self.warn = warn
        self.preloader: Preloader | None = None
        self.workers: set[Worker] = set()
        self.retiring: set[Child] = set()
        self.stop_requested = asyncio.Event()
        self.reload_lock = asyncio.Lock()
        self.pending_changes: set[Path] = set()
        self.changes_task: asyncio.Future[None] | None = None
        self.crashes = 0
        self.last_crash = -float("inf")
        self.warned_no_fork = False
        self.preloader_boot: asyncio.Future[None] | None = None
        self.next_request_id = 0
        self.watcher = Watcher(excluded_dirs, config.watch_ignore)
        self.initial_roots = initial_roots | {Path(p) for p in config.watch_paths}
        self.background: set[asyncio.Future[Any]] = set()
        self.readers: set[asyncio.Task[None]] = set()
        #: The reload the serving workers belong to (a crashed one's replacement keeps it).
        self.generation = new_generation()
        self.drain = draining.Drain(sockets, config.drain_delay, owns_port=not activated)
        self.failure: str | None = None

    # -- life cycle -------------------------------------------------------------------------

    def serve(self, before_serving: Callable[[], None]) -> int:
        """Serve until stopped; ``before_serving`` (checks, banner) runs while workers boot."""
        # The command runs the start-up checks itself; these workers need not repeat them.
        fds = [s.fileno() for s in self.sockets]
        config = replace(self.config, socket_fds=fds, skip_checks=True, generation=self.generation)
        private = [self.metrics.sock] if self.metrics else []
        first = fork_here(config, self.sockets, self.slots(self.worker_count), private)
        return asyncio.run(self.run(before_serving, first))

    async def run(self, before_serving: Callable[[], None], first: list[FirstWorker]) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.request_stop)
        if hasattr(signal, "SIGHUP"):
            loop.add_signal_handler(signal.SIGHUP, self.handle_hangup)
        try:
            if self.metrics is not None:
                await self.metrics.start()
            if first:
                first_workers = self.in_background(
                    asyncio.gather(*(self.adopt(*each) for each in first))
                )
                first_workers.add_done_callback(self.start_serving)
            else:
                self.preloader = await self.start_preloader()
                first_workers = self.in_background(self.reload(cold=False))
            try:
                await asyncio.to_thread(before_serving)
            except BaseException:
                self.request_stop()
                raise
            if self.config.reload:
                self.in_background(self.watch())
            self.failure = await failfast.first_ready(
                first_workers, first, self.config, self.start_serving
            )
            if self.failure:
                return 1
            if not self.config.reload and not self.serving():
                # Without the reloader no edit can bring the project back: fail like runserver.
                return 1
            await self.stop_requested.wait()
        finally:
            await self.shutdown()
        return 1 if self.failure else 0

    def start_serving(self, task: asyncio.Future[list[Worker | None]]) -> None:
        workers = [] if task.cancelled() else task.result()
        self.admit(w for w in workers if w is not None)
        for slot, worker in zip(self.slots(len(workers)), workers, strict=True):
            if worker is None and not self.stop_requested.is_set():
                self.in_background(self.replace_crashed(None, slot))
        # Boot the preloader only now, not to compete with the first worker for the CPU.
        self.preloader_boot = self.in_background(self.boot_preloader())

    def serving(self) -> bool:
        """Whether a worker serves the project (not an error page)."""
        return any(not w.is_broken for w in self.workers)

    def handle_hangup(self) -> None:
        self.in_background(self.reload(cold=True))

    def swap(self, workers: set[Worker], generation: str) -> None:
        # New code replacing serving workers (a crashed one's replacement keeps the generation).
        if self.workers and generation != self.generation:
            self.tally.reloads += 1
        super().swap(workers, generation)

    def request_stop(self) -> None:
        if self.stop_requested.is_set() or self.drain.active:  # a second Ctrl+C: at once
            self.kill_everything()
        elif self.drain.delay > 0 and self.serving():
            self.in_background(self.drain.begin(self.workers, self.stop_requested.set))
            return
        # Set before the children die, so that none of them is taken for a crash and replaced.
        self.stop_requested.set()

    async def shutdown(self) -> None:
        self.watcher.stop()
        for task in self.background:
            task.cancel()
        workers = [*self.workers, *(c for c in self.retiring if isinstance(c, Worker))]
        await asyncio.gather(
            *(self.stop_worker(w) for w in workers), self.drain.close_port(workers)
        )
        preloaders = {w.preloader for w in workers if w.preloader} | {
            c for c in self.retiring if isinstance(c, Preloader)
        }
        if self.preloader:
            preloaders.add(self.preloader)
        await asyncio.gather(*(p.stop() for p in preloaders))
        for sock in self.sockets:
            sock.close()
        if self.metrics is not None:  # last: it answers while the workers drain
            await self.metrics.stop()

    def kill_everything(self) -> None:
        for child in [*self.workers, *self.retiring, self.preloader]:
            if child is not None and child.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)

    def in_background(
        self, coroutine: Coroutine[Any, Any, Any] | asyncio.Future[Any]
    ) -> asyncio.Future[Any]:
        """Run ``coroutine`` as a task that shutdown cancels; the task."""
        task: asyncio.Future[Any] = asyncio.ensure_future(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task
