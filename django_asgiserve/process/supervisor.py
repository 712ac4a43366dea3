"""The supervisor: the process the user started. It holds the listening sockets for its whole
life and swaps the processes that serve them.

A preloader process imports everything that does not change between edits and forks workers
from it. On an edit the supervisor asks every serving worker whether the change matters
(Django's ``file_changed`` receivers may handle it without a restart, in each of them), forks a
new worker, waits until it is ready and only then retires the old one; a change to something
the preloader itself imported starts a new preloader first. The port is never closed, so a
request made meanwhile waits in the listen backlog and is answered by whichever worker is ready.
Nothing here imports user code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from django_asgiserve import backends
from django_asgiserve.asgi.tab_reload import new_generation
from django_asgiserve.process import interrupts
from django_asgiserve.process import preloader as preloader_module
from django_asgiserve.process import worker as worker_module
from django_asgiserve.process.protocol import Channel
from django_asgiserve.process.worker import HARD_STOP_MARGIN
from django_asgiserve.reload import changes
from django_asgiserve.reload.watcher import Watcher
from django_asgiserve.run_config import ENVIRON_KEY, ServerConfig

#: Seconds a worker may take to answer whether a change needs a reload.
CLASSIFY_TIMEOUT = 5.0
#: Seconds a retired preloader gets to exit after its channel is closed.
PRELOADER_EXIT_TIMEOUT = 2.0
MAX_CRASH_BACKOFF = 5.0
#: A worker crash this many seconds after the previous one starts the back-off again from zero.
CRASH_MEMORY_SECONDS = 30.0

Say = Callable[[str], None]


@dataclass(eq=False)
class Child:
    """A process on the other end of a channel, as the supervisor sees it."""

    sock: socket.socket
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    closed: asyncio.Future[None]
    pid: int = 0

    def send(self, message: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(json.dumps(message).encode() + b"\n")

    def close(self) -> None:
        self.writer.close()


@dataclass(eq=False)
class Preloader(Child):
    process: subprocess.Popen[bytes] | None = None
    booted: asyncio.Future[dict[str, Any]] | None = None
    can_fork: bool = False
    #: A preloader that cannot fork serves as the one worker itself, once.
    used: bool = False
    broken: bool = False
    preloaded: frozenset[str] = frozenset()
    workers: set[Worker] = field(default_factory=set)
    #: Commands wait for the previous one's answer (the preloader reads them with descriptors).
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    answer: asyncio.Future[dict[str, Any]] | None = None
    taught: set[str] = field(default_factory=set)

    async def command(
        self, message: dict[str, Any], fds: Sequence[int] = ()
    ) -> dict[str, Any] | None:
        """Send a command and wait for its answer; ``None`` if the preloader is gone."""
        async with self.lock:
            if self.closed.done():
                return None
            self.answer = asyncio.get_running_loop().create_future()
            try:
                # One short message on an idle socket: this never blocks.
                socket.send_fds(self.sock, [json.dumps(message).encode() + b"\n"], list(fds))
            except OSError:
                return None
            await asyncio.wait([self.answer, self.closed], return_when=asyncio.FIRST_COMPLETED)
            return self.answer.result() if self.answer.done() else None


@dataclass(eq=False)
class Worker(Child):
    preloader: Preloader | None = None
    ready: asyncio.Future[dict[str, Any]] | None = None
    stopping: bool = False
    replies: dict[int, asyncio.Future[tuple[str, list[str]]]] = field(default_factory=dict)
    #: With a socket per worker, the index of this worker's socket; None: it serves them all.
    slot: int | None = None


class Supervisor:
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
    ) -> None:
        self.config = config
        #: Whether worker ``k`` serves ``sockets[k]`` alone (SO_REUSEPORT twins, one per
        #: worker) rather than every worker serving every socket.
        #: asgiserve workers to run: one when the backend runs ``config.workers`` itself.
        self.worker_count = (
            1 if backends.backend_class(config.backend).manages_workers else config.workers
        )
        self.sockets = sockets
        self.socket_per_worker = socket_per_worker
        self.say = say
        self.warn = warn
        self.preloader: Preloader | None = None
        self.workers: set[Worker] = set()
        self.retiring: set[Child] = set()
        self.stop_requested = asyncio.Event()
        self.reload_lock = asyncio.Lock()
        self.pending_changes: set[Path] = set()
        self.changes_task: asyncio.Task[None] | None = None
        self.crashes = 0
        self.last_crash = -math.inf
        self.warned_no_fork = False
        self.preloader_boot: asyncio.Task[None] | None = None
        self.next_request_id = 0
        self.watcher = Watcher(excluded_dirs, config.watch_ignore)
        self.initial_roots = initial_roots | {Path(p) for p in config.watch_paths}
        self.background: set[asyncio.Task[Any]] = set()
        self.readers: set[asyncio.Task[None]] = set()
        #: The reload the serving workers belong to (a crashed one's replacement keeps it).
        self.generation = new_generation()

    # -- life cycle -------------------------------------------------------------------------

    def serve(self, before_serving: Callable[[], None]) -> int:
        """Serve until stopped; ``before_serving`` (checks, banner) runs while workers boot."""
        first = self.fork_first_workers()
        return asyncio.run(self.run(before_serving, first))

    def fork_first_workers(self) -> list[tuple[int, socket.socket, int | None]]:
        """Fork the first workers from this process, which has set Django up already: the site
        is served without waiting for a new interpreter. Only before any thread has started."""
        if not hasattr(os, "fork") or threading.active_count() > 1:
            return []
        backend = backends.get(self.config.backend)(self.config)
        # The command runs the start-up checks itself; these workers need not repeat them.
        fds = [s.fileno() for s in self.sockets]
        config = replace(self.config, socket_fds=fds, skip_checks=True, generation=self.generation)
        forked = []
        for slot in self.slots(self.worker_count):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            with interrupts.deferred():
                pid = os.fork()
            if pid == 0:
                for _pid, sibling, _slot in forked:
                    sibling.close()
                ours.close()
                worker_module.run(config.for_slot(slot), backend, Channel(theirs), None)
            theirs.close()
            forked.append((pid, ours, slot))
        return forked

    def slots(self, count: int) -> list[int | None]:
        """The socket slot of each of ``count`` new workers (None: every socket)."""
        if self.socket_per_worker and count == len(self.sockets):
            return list(range(count))
        return [None] * count

    async def adopt_first_worker(
        self, pid: int, sock: socket.socket, slot: int | None
    ) -> Worker | None:
        worker = await self.connect(Worker, sock)
        worker.pid = pid
        worker.slot = slot
        worker.ready = asyncio.get_running_loop().create_future()
        self.listen(worker)
        # Our own child, unlike the preloader's: collect its exit status.
        worker.closed.add_done_callback(lambda _: self.spawn(asyncio.to_thread(os.waitpid, pid, 0)))
        await asyncio.wait([worker.ready, worker.closed], return_when=asyncio.FIRST_COMPLETED)
        return worker if worker.ready.done() else None

    async def boot_preloader(self) -> None:
        self.preloader = await self.start_preloader()

    async def current_preloader(self) -> Preloader | None:
        """The preloader, once it has booted (the first one boots while the site is served)."""
        if self.preloader_boot is not None:
            await asyncio.shield(self.preloader_boot)
        return self.preloader

    async def run(
        self,
        before_serving: Callable[[], None],
        first: list[tuple[int, socket.socket, int | None]],
    ) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.request_stop)
        if hasattr(signal, "SIGHUP"):
            loop.add_signal_handler(signal.SIGHUP, lambda: self.spawn(self.reload(cold=True)))
        try:
            if first:
                first_worker = self.spawn(
                    asyncio.gather(*(self.adopt_first_worker(*f) for f in first))
                )
                first_worker.add_done_callback(self.start_serving)
            else:
                self.preloader = await self.start_preloader()
                first_worker = self.spawn(self.reload(cold=False))
            try:
                await asyncio.to_thread(before_serving)
            except BaseException:
                self.request_stop()
                raise
            if self.config.reload:
                self.spawn(self.watch())
            await first_worker
            if not self.config.reload and not self.serving():
                # Without the reloader no edit can bring the project back: fail like runserver.
                return 1
            await self.stop_requested.wait()
        finally:
            await self.shutdown()
        return 0

    def start_serving(self, task: asyncio.Task[list[Worker | None]]) -> None:
        workers = [] if task.cancelled() else task.result()
        self.workers = {w for w in workers if w is not None}
        for slot, worker in zip(self.slots(len(workers)), workers, strict=True):
            if worker is None and not self.stop_requested.is_set():
                self.spawn(self.replace_crashed(None, slot))
        # Boot the preloader only now, not to compete with the first worker for the CPU.
        self.preloader_boot = self.spawn(self.boot_preloader())

    def serving(self) -> bool:
        """Whether a worker serves the project (not an error page)."""
        return any(w.ready and not w.ready.result().get("broken") for w in self.workers)

    def request_stop(self) -> None:
        if self.stop_requested.is_set():  # a second Ctrl+C: no more waiting
            self.kill_everything()
        self.stop_requested.set()

    async def shutdown(self) -> None:
        self.watcher.stop()
        for task in self.background:
            task.cancel()
        workers = [*self.workers, *(c for c in self.retiring if isinstance(c, Worker))]
        await asyncio.gather(*(self.stop_worker(w) for w in workers))
        preloaders = {w.preloader for w in workers if w.preloader} | {
            c for c in self.retiring if isinstance(c, Preloader)
        }
        if self.preloader:
            preloaders.add(self.preloader)
        await asyncio.gather(*(self.stop_preloader(p) for p in preloaders))
        for sock in self.sockets:
            sock.close()

    def kill_everything(self) -> None:
        for child in [*self.workers, *self.retiring, self.preloader]:
            if child is not None and child.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.pid, signal.SIGKILL)

    def spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    # -- preloaders ---------------------------------------------------------------------------

    async def start_preloader(self) -> Preloader:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fds = [s.fileno() for s in self.sockets]
        config = replace(self.config, socket_fds=fds)
        env = {
            **os.environ,
            ENVIRON_KEY: config.to_environ(),
            preloader_module.CHANNEL_FD_KEY: str(theirs.fileno()),
        }
        with interrupts.deferred():
            process = subprocess.Popen(
                [*interpreter_arguments(), "-c", preloader_module.BOOTSTRAP],
                env=env,
                pass_fds=[*fds, theirs.fileno()],
            )
        theirs.close()
        preloader = await self.connect(Preloader, ours)
        preloader.process = process
        preloader.pid = process.pid
        preloader.booted = asyncio.get_running_loop().create_future()
        self.listen(preloader)
        await asyncio.wait(
            [preloader.booted, preloader.closed], return_when=asyncio.FIRST_COMPLETED
        )
        if preloader.booted.done():
            booted = preloader.booted.result()
            preloader.can_fork = booted["can_fork"]
            if not preloader.can_fork and self.config.reload and not self.warned_no_fork:
                self.warned_no_fork = True
                self.warn(
                    "Fast reloads are off: starting the project left threads running (or this "
                    "platform cannot fork), so each reload starts a new interpreter."
                )
            preloader.broken = booted["broken"]
            preloader.preloaded = frozenset(booted["preloaded"])
        return preloader

    async def stop_preloader(self, preloader: Preloader) -> None:
        preloader.close()
        if preloader.process is None:
            return
        try:
            await asyncio.wait_for(
                asyncio.to_thread(preloader.process.wait), PRELOADER_EXIT_TIMEOUT
            )
        except TimeoutError:
            preloader.process.kill()
            await asyncio.to_thread(preloader.process.wait)

    async def retire_preloader(self, preloader: Preloader) -> None:
        self.retiring.add(preloader)
        await asyncio.gather(*(w.closed for w in preloader.workers))
        await self.stop_preloader(preloader)
        self.retiring.discard(preloader)

    # -- workers ------------------------------------------------------------------------------

    async def start_worker(
        self, preloader: Preloader, slot: int | None = None, generation: str | None = None
    ) -> Worker | None:
        """Fork a worker from ``preloader`` (serving the socket of ``slot``, or all of them) for
        ``generation`` (the serving one's by default); ``None`` if it died before it was ready."""
        if not preloader.booted or not preloader.booted.done() or preloader.closed.done():
            return None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        preloader.used = True
        try:
            command = {"cmd": "fork", "slot": slot, "generation": generation or self.generation}
            forked = await preloader.command(command, [theirs.fileno()])
        finally:
            theirs.close()
        if forked is None and not preloader.can_fork:
            forked = {"pid": preloader.pid}  # it became the worker itself: no answer comes
        if forked is None:
            ours.close()
            return None
        worker = await self.connect(Worker, ours)
        worker.preloader = preloader
        worker.slot = slot
        worker.ready = asyncio.get_running_loop().create_future()
        preloader.workers.add(worker)
        self.listen(worker)
        await asyncio.wait([worker.ready, worker.closed], return_when=asyncio.FIRST_COMPLETED)
        if not worker.ready.done():
            return None
        worker.pid = worker.ready.result()["pid"]
        return worker

    async def stop_worker(self, worker: Worker) -> None:
        worker.stopping = True
        worker.send({"cmd": "stop"})
        timeout = self.config.graceful_timeout + HARD_STOP_MARGIN + 0.5
        try:
            await asyncio.wait_for(asyncio.shield(worker.closed), timeout)
        except TimeoutError:
            if worker.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
            await worker.closed
        worker.close()

    async def retire_worker(self, worker: Worker) -> None:
        self.retiring.add(worker)
        await self.stop_worker(worker)
        self.retiring.discard(worker)

    async def reload(self, *, cold: bool, same_code: bool = False) -> None:
        """Replace the serving workers with a fresh one, never leaving the sockets unserved;
        ``same_code``: for workers that crashed, so the new ones keep their generation."""
        async with self.reload_lock:
            if self.stop_requested.is_set():
                return
            preloader = await self.current_preloader()
            if (
                cold
                or preloader is None
                or preloader.closed.done()
                or preloader.booted is None
                or not preloader.booted.done()
                or (preloader.used and not preloader.can_fork)
            ):
                preloader = await self.start_preloader()
            count = self.worker_count if preloader.can_fork else 1
            generation = self.generation if same_code else new_generation()
            started = await asyncio.gather(
                *(self.start_worker(preloader, slot, generation) for slot in self.slots(count))
            )
            workers = {worker for worker in started if worker is not None}
            if not workers:
                self.warn("The new worker exited before it was ready; waiting for a change.")
                if preloader is not self.preloader:
                    self.spawn(self.stop_preloader(preloader))
                return
            # A worker with a socket of its own is retired only once its socket has a new one.
            taken = {worker.slot for worker in workers}
            kept = {old for old in self.workers if None not in taken and old.slot not in taken}
            old_workers, self.workers = self.workers - kept, workers | kept
            self.generation = generation
            for old in old_workers:
                self.spawn(self.retire_worker(old))
            if preloader is not self.preloader:
                old_preloader, self.preloader = self.preloader, preloader
                if old_preloader is not None:
                    self.spawn(self.retire_preloader(old_preloader))

    def learn(self, modules: list[str]) -> None:
        """Have the preloader import installed packages that workers import, once idle."""
        preloader = self.preloader
        if preloader is None or not preloader.can_fork:
            return
        new = set(modules) - preloader.taught
        if new:
            preloader.taught |= new
            self.spawn(self.teach(preloader, sorted(new)))

    async def teach(self, preloader: Preloader, modules: list[str]) -> None:
        async with self.reload_lock:  # never delay a reload's fork
            answer = await preloader.command({"cmd": "import", "modules": modules})
        if answer is not None:
            preloader.can_fork = answer["can_fork"]
            preloader.preloaded = frozenset(answer["preloaded"])

    # -- messages -----------------------------------------------------------------------------

    async def connect(self, kind: type[Any], sock: socket.socket) -> Any:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=2**26)
        closed = asyncio.get_running_loop().create_future()
        return kind(sock=sock, reader=reader, writer=writer, closed=closed)

    def listen(self, child: Child) -> None:
        # Readers are not background tasks: shutdown needs them to see each child go.
        task = asyncio.ensure_future(self.read_messages(child))
        self.readers.add(task)
        task.add_done_callback(self.readers.discard)

    async def read_messages(self, child: Child) -> None:
        try:
            while line := await child.reader.readline():
                self.dispatch(child, json.loads(line))
        except (ConnectionError, ValueError):
            pass
        finally:
            child.closed.set_result(None)
            self.on_closed(child)

    def dispatch(self, child: Child, message: dict[str, Any]) -> None:
        event = message.get("event")
        if isinstance(child, Preloader):
            if event == "booted" and child.booted and not child.booted.done():
                child.booted.set_result(message)
            elif event in ("forked", "imported") and child.answer and not child.answer.done():
                child.answer.set_result(message)
        elif isinstance(child, Worker):
            if event == "ready" and child.ready and not child.ready.done():
                child.ready.set_result(message)
            elif event == "watch":
                self.watcher.add_roots(Path(r) for r in message["roots"])
            elif event == "learned":
                self.learn(message["modules"])
            elif event == "classified":
                reply = child.replies.pop(message["id"], None)
                if reply is not None and not reply.done():
                    reply.set_result((message["action"], message["paths"]))
                self.learn(message.get("learned", []))

    def on_closed(self, child: Child) -> None:
        if isinstance(child, Worker):
            if child.preloader is not None:
                child.preloader.workers.discard(child)
            for reply in child.replies.values():
                if not reply.done():
                    reply.set_result(("reload", []))
            if child in self.workers and not child.stopping and not self.stop_requested.is_set():
                self.workers.discard(child)
                self.spawn(self.replace_crashed(child))

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
        pid = worker.pid if worker else "the first worker"
        self.warn(f"Worker {pid} exited unexpectedly; starting a new one.")
        await asyncio.sleep(delay)
        preloader = await self.current_preloader()
        if self.workers and preloader is not None and preloader.can_fork:
            # The others still serve: add one beside them rather than replacing them all.
            async with self.reload_lock:
                replacement = await self.start_worker(preloader, worker.slot if worker else slot)
            if replacement is not None:
                self.workers.add(replacement)
        else:
            await self.reload(cold=False, same_code=True)

    # -- watching -----------------------------------------------------------------------------

    async def watch(self) -> None:
        self.watcher.add_roots(self.initial_roots)
        async for paths in self.watcher.changes():
            self.pending_changes |= paths
            if self.changes_task is None or self.changes_task.done():
                self.changes_task = self.spawn(self.handle_changes())

    async def handle_changes(self) -> None:
        while self.pending_changes and not self.stop_requested.is_set():
            changed, self.pending_changes = self.pending_changes, set()
            action, reasons = await self.classify(changed)
            if action == "none":
                continue
            paths = [Path(p) for p in reasons] or sorted(changed)
            preloader = await self.current_preloader()
            stale = (
                preloader is None
                or preloader.broken
                or any(str(p.resolve()) in preloader.preloaded for p in paths)
            )
            names = ", ".join(str(p) for p in paths[:3])
            more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
            self.say(f"{names}{more} changed, reloading.")
            await self.reload(cold=stale or action == "cold")

    async def classify(self, paths: set[Path]) -> tuple[str, list[str]]:
        """Ask every serving worker what ``paths`` changing means (none, reload or cold), and
        which of them matter: each runs Django's receivers for its own caches, and the
        strongest answer counts. A worker that does not answer in time counts as a reload."""
        workers = [worker for worker in self.workers if not worker.closed.done()]
        if not workers:
            python_files = sorted(str(p) for p in paths if p.suffix == ".py")
            return ("reload" if python_files else "none"), python_files
        names = sorted(map(str, paths))
        asked = {worker: self.ask_to_classify(worker, names) for worker in workers}
        await asyncio.wait([reply for _id, reply in asked.values()], timeout=CLASSIFY_TIMEOUT)
        answers = []
        for worker, (request_id, reply) in asked.items():
            if reply.done():
                answers.append(reply.result())
            else:
                worker.replies.pop(request_id, None)
                answers.append(("reload", names))
        return changes.merge(answers)

    def ask_to_classify(
        self, worker: Worker, paths: list[str]
    ) -> tuple[int, asyncio.Future[tuple[str, list[str]]]]:
        """Send ``worker`` a ``changed`` command; its request id and the future of its answer."""
        self.next_request_id += 1
        reply: asyncio.Future[tuple[str, list[str]]] = asyncio.get_running_loop().create_future()
        worker.replies[self.next_request_id] = reply
        worker.send({"cmd": "changed", "id": self.next_request_id, "paths": paths})
        return self.next_request_id, reply


def interpreter_arguments() -> list[str]:
    """This interpreter with its warning and ``-X`` options, as Django's reloader passes them."""
    arguments = [sys.executable, *(f"-W{option}" for option in sys.warnoptions)]
    if sys.implementation.name == "cpython":
        arguments += [
            f"-X{key}" if value is True else f"-X{key}={value}"
            for key, value in sys._xoptions.items()
        ]
    return arguments
