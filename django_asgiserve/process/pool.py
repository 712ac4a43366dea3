"""The supervisor's worker pool and its policies: which preloader forks, spawning and retiring
workers (a reload never leaves the sockets unserved), the crash back-off, and teaching the
preloader the libraries workers go on to import."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from django_asgiserve.asgi.tab_reload import new_generation
from django_asgiserve.insight.reload_timeline import ReloadTimeline
from django_asgiserve.process.children import Child, Preloader, Worker
from django_asgiserve.process.draining import Drain
from django_asgiserve.process.failfast import crash_loop_failure
from django_asgiserve.process.worker import HARD_STOP_MARGIN
from django_asgiserve.run_config import ServerConfig

MAX_CRASH_BACKOFF = 5.0
#: A worker crash this many seconds after the previous one starts the back-off again from zero.
CRASH_MEMORY_SECONDS = 30.0

Say = Callable[[str], None]


class Pool:
    """The pool's verbs; the state they share is :class:`Supervisor`'s."""

    config: ServerConfig
    worker_count: int
    sockets: list[socket.socket]
    socket_per_worker: bool
    say: Say
    warn: Say
    preloader: Preloader | None
    preloader_boot: asyncio.Future[None] | None
    workers: set[Worker]
    retiring: set[Child]
    stop_requested: asyncio.Event
    reload_lock: asyncio.Lock
    crashes: int
    last_crash: float
    warned_no_fork: bool
    #: Whether a worker too big to be helped by a new one has been reported (see :mod:`memory`).
    warned_too_big: bool = False
    generation: str
    #: Between SIGTERM and the stop with --drain-delay: no reloads, a second signal kills.
    drain: Drain
    #: Why a --noreload server gave up (see :mod:`failfast`), for the command's error.
    failure: str | None

    def serving(self) -> bool:
        raise NotImplementedError

    def in_background(
        self, coroutine: Coroutine[Any, Any, Any] | asyncio.Future[Any]
    ) -> asyncio.Future[Any]:
        raise NotImplementedError

    def listen(self, child: Child) -> None:
        raise NotImplementedError

    def slots(self, count: int) -> list[int | None]:
        """The socket slot of each of ``count`` new workers (None: every socket)."""
        if self.socket_per_worker and count == len(self.sockets):
            return list(range(count))
        return [None] * count

    # -- preloaders ---------------------------------------------------------------------------

    async def start_preloader(self) -> Preloader:
        preloader = await Preloader.start(self.config, self.sockets, self.listen)
        booted = preloader.booted is not None and preloader.booted.done()
        if booted and not preloader.can_fork and self.config.reload and not self.warned_no_fork:
            self.warned_no_fork = True
            self.warn(
                "Fast reloads are off: starting the project left threads running (or this "
                "platform cannot fork), so each reload starts a new interpreter."
            )
        return preloader

    async def boot_preloader(self) -> None:
        self.preloader = await self.start_preloader()

    async def current_preloader(self) -> Preloader | None:
        """The preloader, once it has booted (the first one boots while the site is served)."""
        if self.preloader_boot is not None:
            await asyncio.shield(self.preloader_boot)
        return self.preloader

    async def retire_preloader(self, preloader: Preloader) -> None:
        self.retiring.add(preloader)
        await asyncio.gather(*(w.closed for w in preloader.workers))
        await preloader.stop()
        self.retiring.discard(preloader)

    def learn(self, modules: list[str]) -> None:
        """Have the preloader import installed packages that workers import, once idle."""
        preloader = self.preloader
        if preloader is None or not preloader.can_fork:
            return
        new = set(modules) - preloader.taught
        if new:
            preloader.taught |= new
            self.in_background(self.teach(preloader, sorted(new)))

    async def teach(self, preloader: Preloader, modules: list[str]) -> None:
        async with self.reload_lock:  # never delay a reload's fork
            answer = await preloader.command({"cmd": "import", "modules": modules})
        if answer is not None and answer["event"] == "imported":
            preloader.can_fork = answer["can_fork"]
            preloader.preloaded = frozenset(answer["preloaded"])

    # -- workers ------------------------------------------------------------------------------

    async def adopt(self, pid: int, sock: socket.socket, slot: int | None) -> Worker | None:
        """A first worker forked by this process (see :func:`children.fork_here`), once ready."""
        # Our own child, unlike the preloader's: collect its exit status.
        return await Worker.started(
            sock,
            self.listen,
            pid=pid,
            slot=slot,
            when_closed=lambda: self.in_background(asyncio.to_thread(os.waitpid, pid, 0)),
        )

    async def spawn(
        self, preloader: Preloader, slot: int | None = None, generation: str | None = None
    ) -> Worker | None:
        """Fork a worker from ``preloader`` (serving the socket of ``slot``, or all of them) for
        ``generation`` (the serving one's by default); ``None`` if it died before it was ready."""
        if not preloader.has_booted:
            return None
        sock = await preloader.fork(slot, generation or self.generation)
        if sock is None:
            return None
        return await Worker.started(sock, self.listen, slot=slot, preloader=preloader)

    async def stop_worker(self, worker: Worker) -> None:
        await worker.stop(self.config.graceful_timeout + HARD_STOP_MARGIN + 0.5)

    async def retire(self, worker: Worker) -> None:
        self.retiring.add(worker)
        await self.stop_worker(worker)
        self.retiring.discard(worker)

    def needs_new_preloader(self, preloader: Preloader | None) -> bool:
        return (
            preloader is None
            or not preloader.has_booted
            or (preloader.used and not preloader.can_fork)
        )

    async def reload(
        self, *, cold: bool, same_code: bool = False, timeline: ReloadTimeline | None = None
    ) -> None:
        """Replace the serving workers with fresh ones, never leaving the sockets unserved;
        ``same_code``: for workers that crashed, so the new ones keep their generation;
        ``timeline``: marks when the preloader forks and when the new workers are ready."""
        async with self.reload_lock:
            # A drain still replaces a crashed worker (which then drains too), not the code.
            if self.stop_requested.is_set() or (self.drain.active and not same_code):
                return
            preloader = await self.current_preloader()
            if cold or preloader is None or self.needs_new_preloader(preloader):
                preloader = await self.start_preloader()
            count = self.worker_count if preloader.can_fork else 1
            generation = self.generation if same_code else new_generation()
            if timeline is not None:
                timeline.mark("preloader started" if preloader is not self.preloader else "fork")
            started = await asyncio.gather(
                *(self.spawn(preloader, slot, generation) for slot in self.slots(count))
            )
            if timeline is not None:
                timeline.mark("application loaded")
            workers = {worker for worker in started if worker is not None}
            if not workers:
                self.warn("The new worker exited before it was ready; waiting for a change.")
                if preloader is not self.preloader:
                    self.in_background(preloader.stop())
                return
            self.swap(workers, generation)
            if preloader is not self.preloader:
                old_preloader, self.preloader = self.preloader, preloader
                if old_preloader is not None:
                    self.in_background(self.retire_preloader(old_preloader))

    def swap(self, workers: set[Worker], generation: str) -> None:
        """Serve with ``workers`` from now on and retire those they replace."""
        # A worker with a socket of its own is retired only once its socket has a new one.
        taken = {worker.slot for worker in workers}
        kept = {old for old in self.workers if None not in taken and old.slot not in taken}
        old_workers, self.workers = self.workers - kept, kept
        self.admit(workers)
        self.generation = generation
        for old in old_workers:
            self.in_background(self.retire(old))

    def admit(self, workers: Iterable[Worker]) -> None:
        """Serve with ``workers`` too: the one place a worker joins the serving ones, so that
        one that starts during a drain (a crashed worker's replacement, a recycle or a reload
        that was under way) is told to drain as well."""
        for worker in workers:
            self.workers.add(worker)
            if self.drain.active:
                worker.send({"cmd": "drain"})

    async def replace_crashed(self, worker: Worker | None, slot: int | None = None) -> None:
        # A worker that dies right after saying it is ready (its code exits, it runs out of
        # memory) must not be restarted in a tight loop: the back-off only resets once workers
        # have lived a while.
        now = asyncio.get_running_loop().time()
        if now - self.last_crash > CRASH_MEMORY_SECONDS:
            self.crashes = 0
        self.last_crash = now
        self.crashes += 1
        delay = min(MAX_CRASH_BACKOFF, 0.1 * 2 ** (self.crashes - 1))
        self.failure = crash_loop_failure(self.config, self.crashes, self.serving())
        if self.failure:  # --noreload gives up
            self.stop_requested.set()
            return
        pid = worker.pid if worker else "the first worker"
        self.warn(f"Worker {pid} exited unexpectedly; starting a new one.")
        await asyncio.sleep(delay)
        preloader = await self.current_preloader()
        if self.workers and preloader is not None and preloader.can_fork:
            # The others still serve: add one beside them rather than replacing them all.
            async with self.reload_lock:
                replacement = await self.spawn(preloader, worker.slot if worker else slot)
            if replacement is not None:
                self.admit([replacement])
        else:
            await self.reload(cold=False, same_code=True)
