"""The pool: the serving workers, one per seat, the retiring ones, the generation they serve, and
the launches under way (:mod:`launches`), with the verbs that change them: launch, abandon, take
a finished launch's workers in, retire. What to start and when is the supervisor's decision."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from pathlib import Path

from django_asgiserve.asgi.tab_reload import new_generation
from django_asgiserve.insight.reload_timeline import ReloadTimeline
from django_asgiserve.run_config import HARD_STOP_MARGIN, ServerConfig
from django_asgiserve.supervisor.children import Worker
from django_asgiserve.supervisor.clock import Clock
from django_asgiserve.supervisor.events import LaunchDone
from django_asgiserve.supervisor.launches import Launch, Launcher, Purpose
from django_asgiserve.supervisor.tasks import Tasks

#: Seconds past the grace period before a stopping worker is killed (it ends itself sooner).
KILL_MARGIN = HARD_STOP_MARGIN + 0.5


class Pool:
    def __init__(
        self,
        launcher: Launcher,
        tasks: Tasks,
        clock: Clock,
        *,
        size: int,
        generation: str,
        socket_per_worker: bool,
        bound: float | None,
        stop_timeout: float,
    ) -> None:
        self.launcher = launcher
        self.tasks = tasks
        self.clock = clock
        #: Seats: --workers (one when the backend runs its own workers).
        self.size = size
        #: Whether each seat's worker serves a socket of its own (SO_REUSEPORT twins).
        self.socket_per_worker = socket_per_worker
        #: Seconds a launch's workers get to load (``None``: no bound); to stop, to be killed.
        self.bound = bound
        self.stop_timeout = stop_timeout
        self.serving: dict[int, Worker] = {}
        self.retiring: set[Worker] = set()
        #: The code the serving workers run (a crashed one's replacement keeps it).
        self.generation = generation
        self.launches: list[Launch] = []

    @classmethod
    def for_run(
        cls,
        config: ServerConfig,
        launcher: Launcher,
        tasks: Tasks,
        clock: Clock,
        *,
        size: int,
        socket_per_worker: bool,
    ) -> Pool:
        return cls(
            launcher,
            tasks,
            clock,
            size=size,
            generation=new_generation(),
            socket_per_worker=socket_per_worker,
            # Without the reloader a worker that never loads is given up on (with it: an edit).
            bound=None if config.reload else config.startup_timeout or None,
            stop_timeout=config.graceful_timeout + KILL_MARGIN,
        )

    # -- what there is -----------------------------------------------------------------------

    def workers(self) -> list[Worker]:
        return list(self.serving.values())

    def serves_project(self) -> bool:
        """Whether a worker serves the project (not the error page)."""
        return any(not w.broken for w in self.serving.values())

    def everyone(self) -> list[Worker]:
        """Every worker alive or starting: serving, retiring and launched."""
        launched = [w for launch in self.launches for w in launch.workers]
        return [*self.serving.values(), *self.retiring, *launched]

    def untold(self) -> list[Worker]:
        """Serving workers not told to serve yet (held while the checks ran)."""
        return [w for w in self.serving.values() if not w.told_to_serve]

    def code_launch(self) -> Launch | None:
        """The launch of new code under way, if any."""
        return next((launch for launch in self.launches if launch.is_code), None)

    def covers(self, seat: int) -> bool:
        """Whether a launch under way will fill ``seat``."""
        return any(seat in launch.seats for launch in self.launches)

    def recycling(self, worker: Worker) -> bool:
        return any(launch.replacing is worker for launch in self.launches)

    # -- launches ----------------------------------------------------------------------------

    def launch(
        self,
        purpose: Purpose,
        seats: Iterable[int],
        *,
        generation: str | None = None,
        fresh: bool = False,
        changed: Iterable[Path] = (),
        replacing: Worker | None = None,
        timeline: ReloadTimeline | None = None,
    ) -> Launch:
        """Start workers for ``seats`` (``generation``: new code; else the serving code's)."""
        launch = Launch(
            purpose,
            tuple(seats),
            generation or self.generation,
            fresh=fresh,
            changed=frozenset(changed),
            began=self.clock.now(),
            replacing=replacing,
            timeline=timeline,
        )
        self.launches.append(launch)
        launch.task = self.tasks.start(self.launching(launch), purpose.value)
        return launch

    def relaunch(
        self,
        *,
        first: bool,
        fresh: bool,
        changed: Iterable[Path],
        timeline: ReloadTimeline | None,
    ) -> None:
        """New code for every seat; ``first``: nothing has served yet. The launch of new code
        under way, if any, is given up."""
        if (under_way := self.code_launch()) is not None:
            self.abandon(under_way)
        self.launch(
            Purpose.FIRST if first else Purpose.RELOAD,
            range(self.size),
            generation=new_generation(),
            fresh=fresh,
            changed=changed,
            timeline=timeline,
        )

    async def launching(self, launch: Launch) -> LaunchDone:
        await launch.run(self.launcher, self.clock, self.bound)
        return LaunchDone(launch)

    def abandon(self, launch: Launch) -> None:
        """Give ``launch`` up: none of its workers will serve."""
        if launch in self.launches:
            self.launches.remove(launch)
        launch.abandon()
        self.launcher.discard(launch.workers)

    def finish(self, launch: Launch, *, stopping: bool) -> dict[int, Worker] | None:
        """``launch`` is over: its workers that may serve now, by seat (the others are killed);
        ``None`` if it had been abandoned (or the supervisor is ``stopping``)."""
        if launch not in self.launches or stopping:
            self.abandon(launch)
            return None
        self.launches.remove(launch)
        loaded = launch.loaded
        if not launch.is_code and launch.generation != self.generation:
            loaded = {}  # the code of a generation replaced meanwhile
        if launch.replacing is not None and launch.replacing not in self.workers():
            # The worker it was to replace has gone: it takes the seat, unless taken already.
            loaded = {seat: w for seat, w in loaded.items() if seat not in self.serving}
        unused = [w for w in launch.workers if loaded.get(w.seat) is not w]
        for worker in unused:
            worker.kill()
        self.launcher.discard(unused)
        return loaded

    # -- who serves --------------------------------------------------------------------------

    def install(self, workers: Iterable[Worker], generation: str, *, every_seat: bool) -> None:
        """Serve with ``workers`` from now on, retiring those they replace: ``every_seat``, new
        code replacing every worker; else each in its seat. A worker with a socket of its own
        is only ever replaced by one for its seat, so that no socket goes unserved."""
        workers = list(workers)
        if every_seat and not self.socket_per_worker:
            replaced, self.serving = list(self.serving.values()), {}
        else:
            replaced = [self.serving.pop(w.seat) for w in workers if w.seat in self.serving]
        self.serving.update({w.seat: w for w in workers})
        self.generation = generation
        self.launcher.installed(workers)
        for old in replaced:
            self.retiring.add(old)
            self.tasks.start(self.retire(old), "retire")

    async def retire(self, worker: Worker) -> None:
        await worker.stop(self.clock, self.stop_timeout)

    async def stop(self, workers: Iterable[Worker], *alongside: Awaitable[None]) -> None:
        """Stop ``workers`` (killing those past their grace), then the process model's own
        processes; ``alongside``: what else to await meanwhile (the port's closing)."""
        await asyncio.gather(*(w.stop(self.clock, self.stop_timeout) for w in workers), *alongside)
        await self.launcher.stop()

    def kill(self, workers: Iterable[Worker]) -> None:
        for worker in workers:
            worker.kill()
        self.launcher.kill()

    def remove(self, worker: Worker) -> bool:
        """Forget ``worker``, gone; whether it was serving."""
        self.retiring.discard(worker)
        if self.serving.get(worker.seat) is worker:
            del self.serving[worker.seat]
            return True
        return False
