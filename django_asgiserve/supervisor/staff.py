"""Keeping every seat served: the supervisor's handlers for what happens to workers (a launch
over, a worker gone, a crash back-off over, a worker asking to be recycled), and the verbs they
share (install, serve, a crash).

They decide by the supervisor's state, which they read, and change it only through the three
transitions of :class:`Life`; everything else they change is the pool's, the crash policy's and
the recycling's (collaborators of their own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from django_asgiserve.run_config import ServerConfig
from django_asgiserve.supervisor import crashes
from django_asgiserve.supervisor.children import Worker
from django_asgiserve.supervisor.clock import Clock
from django_asgiserve.supervisor.crashes import Crashes
from django_asgiserve.supervisor.draining import Drain
from django_asgiserve.supervisor.events import (
    BackoffOver,
    LaunchDone,
    RecycleAsked,
    State,
    WorkerGone,
)
from django_asgiserve.supervisor.launches import Launch, Purpose
from django_asgiserve.supervisor.pool import Pool
from django_asgiserve.supervisor.recycling import Recycling
from django_asgiserve.supervisor.tally import WorkerTally
from django_asgiserve.supervisor.tasks import Tasks

WAITING = "The new worker exited before it was ready; waiting for a change."

Say = Callable[[str], None]


class Life(Protocol):
    """The supervisor as :class:`Staff` sees it: its state, and three transitions."""

    state: State

    def go_serving(self) -> None:
        """STARTING: the first workers have loaded after the checks: serve."""

    def reloaded(self) -> None:
        """RELOADING: the new code's launch is over (loaded or not)."""

    def stop(self, failure: str | None = None) -> None:
        """Stop, the command failing with ``failure``."""


class Staff:
    def __init__(
        self,
        life: Life,
        pool: Pool,
        config: ServerConfig,
        *,
        clock: Clock,
        tasks: Tasks,
        drain: Drain,
        tally: WorkerTally,
        say: Say,
        warn: Say,
    ) -> None:
        self.life = life
        self.pool = pool
        self.config = config
        self.clock = clock
        self.tasks = tasks
        self.drain = drain
        self.tally = tally
        self.say = say
        self.warn = warn
        self.crashes = Crashes(clock, reload=config.reload)
        self.recycling = Recycling(config, warn)

    @property
    def ending(self) -> bool:
        return self.life.state in (State.STOPPING, State.STOPPED)

    def handle(self, event: LaunchDone | WorkerGone | RecycleAsked | BackoffOver) -> None:
        match event:
            case LaunchDone():
                self.handle_launch_done(event)
            case WorkerGone():
                self.handle_worker_gone(event)
            case RecycleAsked():
                self.handle_recycle_asked(event)
            case BackoffOver():
                self.handle_backoff_over(event)

    def handle_launch_done(self, event: LaunchDone) -> None:
        launch = event.launch
        loaded = self.pool.finish(launch, stopping=self.ending)
        if loaded is None:
            return
        if launch.is_code:
            self.code_loaded(launch, loaded)
        elif loaded:
            self.install(loaded.values(), launch.generation, every_seat=False)
        if not self.ending:  # a seat left empty: a crash (a recycled worker's too)
            for seat in launch.failed:
                if seat not in self.pool.serving and not self.pool.covers(seat):
                    self.crashed(seat, failed_line(launch, seat))
        if self.life.state is State.SERVING:
            for worker, request in self.recycling.take_deferred():
                self.handle_recycle_asked(RecycleAsked(worker, request))

    def code_loaded(self, launch: Launch, loaded: dict[int, Worker]) -> None:
        if not loaded and launch.purpose is Purpose.FIRST and launch.timed_out:
            return self.life.stop(crashes.no_worker_ready(self.config.startup_timeout))
        if loaded:
            if launch.purpose is Purpose.RELOAD and self.pool.serving:
                self.tally.reloads += 1
            seen = launch.timeline.seen if launch.timeline is not None else None
            self.install(loaded.values(), launch.generation, every_seat=True, since=seen)
            if launch.timeline is not None and self.pool.serves_project():
                self.say(launch.timeline.summary(self.config.verbosity))
        elif launch.purpose is Purpose.RELOAD:
            self.warn(not_loaded(self.config.startup_timeout) if launch.timed_out else WAITING)
        if self.life.state is State.RELOADING and not self.pool.code_launch():
            self.life.reloaded()

    def install(
        self,
        workers: Iterable[Worker],
        generation: str,
        *,
        every_seat: bool,
        since: float | None = None,
    ) -> None:
        """``workers`` serve (once the checks are over); ``since``: when their edit was seen."""
        workers = list(workers)
        self.pool.install(workers, generation, every_seat=every_seat)
        if self.life.state is State.STARTING:
            self.life.go_serving()
        elif self.life.state is not State.CHECKING:  # held until the checks are over
            for worker in workers:
                self.serve(worker, since)

    def serve(self, worker: Worker, since: float | None = None) -> None:
        if self.drain.active:  # one that starts during a drain drains from its first request
            worker.drain()
        worker.serve(since)
        self.tally.started()

    def handle_worker_gone(self, event: WorkerGone) -> None:
        worker = event.worker
        serving = self.pool.remove(worker)
        self.tally.exited(
            worker,
            served=worker.told_to_serve,
            stopping=worker.told_to_stop,
            server_stopping=self.ending,
        )
        if serving and not worker.told_to_stop and not self.ending:
            self.crashed(
                worker.seat, f"Worker {worker.pid} exited unexpectedly; starting a new one."
            )

    def crashed(self, seat: int, line: str) -> None:
        """``seat`` lost its worker: a new one after the back-off (or give up, see
        :mod:`crashes`); a launch under way that covers the seat fills it instead."""
        verdict = self.crashes.crashed(serving=self.pool.serves_project())
        if verdict.failure is not None:
            return self.life.stop(verdict.failure)
        self.warn(line)
        if not self.pool.covers(seat) and self.crashes.back_off(seat):
            self.tasks.after(self.clock, verdict.delay, BackoffOver(seat))

    def handle_backoff_over(self, event: BackoffOver) -> None:
        self.crashes.backed_off(event.seat)
        if self.ending or event.seat in self.pool.serving or self.pool.covers(event.seat):
            return
        self.pool.launch(Purpose.REPLACE, [event.seat])

    def handle_recycle_asked(self, event: RecycleAsked) -> None:
        worker = event.worker
        self.tally.asked_to_recycle(worker)
        if self.life.state is State.RELOADING:  # the reload replaces it, unless it fails
            return self.recycling.defer(worker, event.request)
        if self.life.state is not State.SERVING or self.pool.covers(worker.seat):
            return
        if self.pool.serving.get(worker.seat) is not worker:
            return
        line = self.recycling.why(worker.pid, event.request)
        if line is not None:
            self.say(line)
            self.pool.launch(Purpose.RECYCLE, [worker.seat], replacing=worker)


def not_loaded(timeout: float) -> str:
    return (
        f"The new workers did not load within {timeout:g} seconds (--startup-timeout): the "
        "workers serving go on."
    )


def failed_line(launch: Launch, seat: int) -> str:
    pids = [w.pid for w in launch.workers if w.seat == seat]
    who = f"Worker {pids[-1]}" if pids else "A new worker"
    return f"{who} exited unexpectedly; starting a new one."
