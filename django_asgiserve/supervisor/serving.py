"""The supervisor put together for the management command: the process model, the real clock, the
drain, --metrics, the reloader's watcher, the signals, and runserver's checks on a thread of their
own, then its loop run until every child has stopped (see :mod:`supervisor`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from django_asgiserve import backends, platforms
from django_asgiserve.process import interrupts, warm_up
from django_asgiserve.reload.watcher import Watcher
from django_asgiserve.run_config import ServerConfig
from django_asgiserve.supervisor.clock import Clock, MonotonicClock
from django_asgiserve.supervisor.draining import Drain
from django_asgiserve.supervisor.events import EditsSeen, Event, HangupAsked, StopAsked
from django_asgiserve.supervisor.fork_model import ForkLauncher
from django_asgiserve.supervisor.launches import Launcher
from django_asgiserve.supervisor.metrics_listener import MetricsListener
from django_asgiserve.supervisor.spawn_model import SpawnLauncher
from django_asgiserve.supervisor.supervisor import Outcome, Say, Supervisor
from django_asgiserve.supervisor.switching_model import SwitchingLauncher
from django_asgiserve.supervisor.tally import WorkerTally
from django_asgiserve.supervisor.tasks import Tasks


@dataclass
class Run:
    """What the command hands over: one server run."""

    config: ServerConfig
    sockets: list[socket.socket]
    #: runserver's checks, migrations warning and banner (raises when they fail).
    before_serving: Callable[[], None]
    say: Say
    warn: Say
    #: The reloader's: what never to watch, and what to watch from the start.
    excluded_dirs: list[Path] = field(default_factory=list)
    initial_roots: set[Path] = field(default_factory=set)
    #: Whether worker ``k`` serves ``sockets[k]`` alone (SO_REUSEPORT twins, one per worker).
    socket_per_worker: bool = False
    metrics_socket: socket.socket | None = None
    #: Sockets from systemd (their port is the manager's: a drain leaves it alone).
    activated: bool = False


def serve(run: Run) -> Outcome:
    """Serve until stopped; how it ended."""
    run = replace(run, say=unfailing(run.say), warn=unfailing(run.warn))
    tally = WorkerTally()
    metrics = None
    config = replace(run.config, socket_fds=[s.fileno() for s in run.sockets])
    if config.warm_up:  # the workers' warm-up plan (process.warm_up): no file is left behind
        config = replace(config, warm_plan_fd=warm_up.create_plan())
    if run.metrics_socket is not None:
        metrics = MetricsListener(
            run.metrics_socket, lambda: tally.figures(len(supervisor.pool.serving))
        )
        config = replace(config, metrics_fd=metrics.board.fd)
    size = 1 if backends.backend_class(config.backend).manages_workers else config.workers
    clock = MonotonicClock()
    supervisor = Supervisor(
        config,
        launcher=lambda post, tasks: process_model(
            run, config, [metrics.sock] if metrics else [], post, tasks, clock
        ),
        size=size,
        socket_per_worker=run.socket_per_worker,
        drain=Drain(run.sockets, config.drain_delay, owns_port=not run.activated),
        checks=lambda: in_daemon_thread(run.before_serving),
        clock=clock,
        say=run.say,
        warn=run.warn,
        tally=tally,
    )
    pool = supervisor.pool
    # A stop from now on waits for the loop's handlers (see interrupts).
    interrupts.hold_stops()
    # Before the event loop: workers forked from here must not inherit its signal handling.
    supervisor.launcher.prepare(size, pool.generation)
    return asyncio.run(running(supervisor, run, metrics))


def unfailing(write: Say) -> Say:
    """``write``, unable to fail. Once the console has gone (its terminal closed, or the process
    reading a pipe of it ended) what the supervisor says is lost, as runserver's log lines are
    then, and it serves on: an error raised in a handler is said too, and saying that one would
    fail again, for ever."""

    def write_or_drop(text: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # EPIPE, EIO; ValueError: closed
            write(text)

    return write_or_drop


def process_model(
    run: Run,
    config: ServerConfig,
    private: list[socket.socket],
    post: Callable[[Event], None],
    tasks: Tasks,
    clock: Clock,
) -> Launcher:
    """The run's process model: spawn, fork, or (fork by default) fork until it proves unsafe."""
    spawn = SpawnLauncher(
        config,
        run.sockets,
        socket_per_worker=run.socket_per_worker,
        post=post,
        tasks=tasks,
        clock=clock,
    )
    if config.process_model == platforms.SPAWN:
        return spawn

    def fork(unsafe: Callable[[str], None] | None) -> ForkLauncher:
        return ForkLauncher(
            config,
            run.sockets,
            socket_per_worker=run.socket_per_worker,
            private=private,
            post=post,
            tasks=tasks,
            clock=clock,
            warn=run.warn,
            unsafe=unsafe,
        )

    if config.process_model_forced:
        return fork(None)
    return SwitchingLauncher(fork, spawn, run.warn)


async def running(supervisor: Supervisor, run: Run, metrics: MetricsListener | None) -> Outcome:
    take_signals(asyncio.get_running_loop(), supervisor.post)
    interrupts.release_stops()
    watching = None
    if supervisor.config.reload:
        watcher = Watcher(run.excluded_dirs, supervisor.config.watch_ignore)
        roots = run.initial_roots | {Path(p) for p in supervisor.config.watch_paths}
        supervisor.watch = lambda more: watcher.add_roots(Path(r) for r in more)
        supervisor.on_stop.append(watcher.stop)
        watching = asyncio.ensure_future(watch(watcher, roots, supervisor))
    try:
        if metrics is not None:
            await metrics.start()
        return await supervisor.run()
    finally:
        if watching is not None:
            watching.cancel()
        for sock in run.sockets:
            sock.close()
        if metrics is not None:  # last: it answers while the workers drain
            await metrics.stop()


def take_signals(loop: asyncio.AbstractEventLoop, post: Callable[[Event], None]) -> None:
    """Ctrl+C and SIGTERM stop, SIGHUP restarts the workers (Windows: Ctrl+C and Ctrl+Break
    stop; it has no SIGHUP, and its event loops no signal handlers of their own)."""
    stops = [signal.SIGINT, signal.SIGTERM]
    if sys.platform == "win32":
        stops.append(signal.SIGBREAK)
    if platforms.is_windows():
        for signum in stops:
            signal.signal(signum, lambda got, _: loop.call_soon_threadsafe(post, StopAsked(got)))
        return
    for signum in stops:
        loop.add_signal_handler(signum, post, StopAsked(signum))
    if sys.platform != "win32" and platforms.has_hangup():
        loop.add_signal_handler(signal.SIGHUP, post, HangupAsked())


async def watch(watcher: Watcher, roots: set[Path], supervisor: Supervisor) -> None:
    """Hand each batch of edits to the supervisor (edits made before the checks are over wait
    for them)."""
    watcher.add_roots(roots)
    async for paths in watcher.changes():
        supervisor.post(EditsSeen(frozenset(paths)))


async def in_daemon_thread(function: Callable[[], None]) -> None:
    """Run ``function`` on a thread of its own, which the process does not wait for at exit: a
    stop during the checks (a database that does not answer) does not wait for them either."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if done.done():
            return
        if error is None:
            done.set_result(None)
        else:
            done.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            function()
        except Exception as raised:
            error = raised
        except BaseException as raised:  # SystemExit: a future cannot carry it
            error = RuntimeError(f"the checks ended with {raised!r}")
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, daemon=True, name="asgiserve-checks").start()
    await done
