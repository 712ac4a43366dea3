"""Starting workers: the process model the supervisor starts them through (:class:`Launcher`),
and one start, from the fork to each worker loaded (:class:`Launch`).

A launch is an operation of the supervisor's: it owns the workers it starts until it is over,
kills them if it is abandoned (a newer reload, the stop) or past its bound, and changes nothing
else; the supervisor decides what its workers become when its
:class:`~django_asgiserve.supervisor.events.LaunchDone` arrives.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from django_asgiserve.insight.reload_timeline import ReloadTimeline
from django_asgiserve.supervisor.children import Worker
from django_asgiserve.supervisor.clock import Clock, first_done, wait_for


class Launcher(Protocol):
    """A process model: how the supervisor gets workers. The fork model
    (:class:`~django_asgiserve.supervisor.fork_model.ForkLauncher`) forks them from a preloader
    that imported the project; the spawn model
    (:class:`~django_asgiserve.supervisor.spawn_model.SpawnLauncher`) starts each in a fresh
    interpreter."""

    def prepare(self, seats: int, generation: str) -> None:
        """Before the supervisor's event loop runs: start what can only start there."""

    async def start(
        self,
        seats: Sequence[int],
        generation: str,
        *,
        fresh: bool,
        changed: Collection[Path],
        started: Callable[[Worker], None],
    ) -> str:
        """Start a worker for each of ``seats`` with ``generation``'s code, handing each to
        ``started`` as soon as it exists; ``fresh``: from newly imported code, as it must be
        too when ``changed`` files were imported for the workers it would start (the fork
        model: by its preloader). How they were started, as the reload timing says it
        (``fork``, ``preloader started``, ``spawned``)."""
        ...

    def warm_up(self) -> None:
        """The first workers serve: get ready for the next start (the fork model boots its
        preloader now, not to compete with them for the CPU)."""

    def installed(self, workers: Collection[Worker]) -> None:
        """``workers`` serve from now on (the fork model retires the preloader they replace)."""

    def discard(self, workers: Collection[Worker]) -> None:
        """``workers`` will never serve: release what was started for them alone."""

    def learn(self, modules: list[str]) -> None:
        """Workers went on to import these library ``modules``: import them for the next ones."""

    async def stop(self) -> None:
        """Stop what it started besides the workers (the fork model: its preloaders)."""

    def kill(self) -> None:
        """Kill the same, at once."""

    def close(self) -> None:
        """The supervisor is done: stop reading children."""


class Purpose(enum.Enum):
    #: The first workers.
    FIRST = "first"
    #: New code for every seat: an edit, SIGHUP.
    RELOAD = "reload"
    #: A seat whose worker crashed, with the same code.
    REPLACE = "replace"
    #: A worker past a limit, with the same code: it retires once its replacement loaded.
    RECYCLE = "recycle"


@dataclass(eq=False)
class Launch:
    purpose: Purpose
    seats: tuple[int, ...]
    generation: str
    #: From newly imported code (a change to something the preloader imported, SIGHUP).
    fresh: bool = False
    #: The files whose change it answers (they may call for fresh code).
    changed: frozenset[Path] = frozenset()
    #: When it began, on the supervisor's clock.
    began: float = 0.0
    #: RECYCLE: the worker it replaces.
    replacing: Worker | None = None
    timeline: ReloadTimeline | None = None
    workers: list[Worker] = field(default_factory=list)
    #: Whether its bound passed with workers still loading (they were killed).
    timed_out: bool = False
    task: asyncio.Task[object] | None = None

    @property
    def is_code(self) -> bool:
        """Whether it brings code of its own (the others serve the serving generation's)."""
        return self.purpose in (Purpose.FIRST, Purpose.RELOAD)

    @property
    def loaded(self) -> dict[int, Worker]:
        """Its workers that loaded and are still alive, by seat."""
        return {w.seat: w for w in self.workers if w.loaded.done() and not w.gone.done()}

    @property
    def failed(self) -> list[int]:
        """The seats it has no live, loaded worker for."""
        loaded = self.loaded
        return [seat for seat in self.seats if seat not in loaded]

    async def run(self, launcher: Launcher, clock: Clock, bound: float | None) -> None:
        """Start the workers and wait until each has loaded or gone; past ``bound`` seconds
        (``None``: no bound) the ones still loading are killed."""
        work = asyncio.ensure_future(self.start_and_load(launcher))
        try:
            if not await wait_for(clock, work, bound):
                self.timed_out = True
                work.cancel()
                for worker in self.workers:
                    if not worker.loaded.done():
                        worker.kill()
        except asyncio.CancelledError:
            work.cancel()
            raise
        if work.done() and not work.cancelled() and work.exception() is not None:
            raise work.exception()  # type: ignore[misc]

    async def start_and_load(self, launcher: Launcher) -> None:
        how = await launcher.start(
            self.seats,
            self.generation,
            fresh=self.fresh,
            changed=self.changed,
            started=self.workers.append,
        )
        if self.timeline is not None:
            self.timeline.mark(how)
        for worker in self.workers:
            await first_done(worker.loaded, worker.gone)
        if self.timeline is not None:
            self.timeline.mark("application loaded")

    def abandon(self) -> None:
        """Stop it: none of its workers will serve."""
        if self.task is not None:
            self.task.cancel()
        for worker in self.workers:
            worker.kill()
