"""In-process doubles for the supervisor's life-cycle tests: a clock the test moves itself, and a
process model whose children are objects the test makes load, crash or exit.

Everything else is the real supervisor: its loop, its states, the pool, edits, crashes, the
drain and the tasks. A :class:`Scenario` runs one supervisor on the running event loop; the test
drives it (checks passing or failing, workers loading, signals, edits, time) and reads what the
children were told (:meth:`FakeChild.told`) and how the run ended.
"""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django_asgiserve.process.protocol import PreloaderCommand, WorkerCommand, WorkerEvent
from django_asgiserve.run_config import ServerConfig
from django_asgiserve.supervisor.children import Worker
from django_asgiserve.supervisor.draining import Drain
from django_asgiserve.supervisor.events import (
    EditsSeen,
    Event,
    HangupAsked,
    State,
    StopAsked,
    WorkerGone,
    worker_event,
)
from django_asgiserve.supervisor.supervisor import Outcome, Supervisor
from django_asgiserve.supervisor.tasks import Tasks

#: Turns of the event loop that let every ready task run (nothing here waits on real time).
SETTLE_TURNS = 200


async def settle() -> None:
    """Let every task that can run, run."""
    for _turn in range(SETTLE_TURNS):
        await asyncio.sleep(0)


class FakeClock:
    """Monotonic time that moves only when the test says so."""

    def __init__(self) -> None:
        self.time = 1000.0
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sleepers.append((self.time + seconds, woken))
        await woken

    def advance(self, seconds: float) -> None:
        self.time += seconds
        for deadline, woken in list(self.sleepers):
            if deadline <= self.time:
                self.sleepers.remove((deadline, woken))
                if not woken.done():
                    woken.set_result(None)


class FakeChild:
    """A worker process: what it was told, and whether it was killed."""

    def __init__(self, launcher: FakeLauncher, pid: int) -> None:
        self.launcher = launcher
        self.pid = pid
        self.worker: Worker | None = None
        self.sent: list[PreloaderCommand | WorkerCommand] = []
        self.killed = False
        #: Whether it exits once told to stop (else: it has to be killed).
        self.obeys_stop = True

    def told(self, command: str) -> bool:
        return any(message["cmd"] == command for message in self.sent)

    def send(self, message: PreloaderCommand | WorkerCommand) -> None:
        self.sent.append(message)
        if message["cmd"] == "stop" and self.obeys_stop and self.worker is not None:
            self.launcher.exit_soon(self.worker)

    def close(self) -> None:
        pass

    def kill(self) -> None:
        self.killed = True
        if self.worker is not None:
            self.launcher.exit_soon(self.worker)


@dataclass
class Start:
    """One call of the process model's ``start``."""

    seats: tuple[int, ...]
    generation: str
    fresh: bool
    changed: frozenset[Path]
    workers: list[Worker] = field(default_factory=list)


class FakeLauncher:
    """A process model whose children the test drives; implements ``Launcher``."""

    def __init__(self, post: Callable[[Event], None], tasks: Tasks) -> None:
        self.post = post
        self.tasks = tasks
        self.starts: list[Start] = []
        self.next_pid = 100
        #: When set, ``start`` waits for it (a preloader booting); when ``dead``, it starts
        #: nothing (a preloader that died).
        self.gate: asyncio.Event | None = None
        self.dead = False
        self.warmed_up = 0
        self.installed_workers: list[Worker] = []
        self.discarded: list[Worker] = []
        self.learned: list[str] = []
        self.stopped = False
        self.killed = False

    def prepare(self, seats: int, generation: str) -> None:
        pass

    async def start(
        self,
        seats: Sequence[int],
        generation: str,
        *,
        fresh: bool,
        changed: Collection[Path],
        started: Callable[[Worker], None],
    ) -> str:
        record = Start(tuple(seats), generation, fresh, frozenset(changed))
        self.starts.append(record)
        if self.gate is not None:
            await self.gate.wait()
        if self.dead:
            return "preloader started" if fresh else "fork"
        for seat in seats:
            self.next_pid += 1
            child = FakeChild(self, self.next_pid)
            worker = Worker(child, seat, generation)
            child.worker = worker
            record.workers.append(worker)
            started(worker)
        return "preloader started" if fresh else "fork"

    # What a child does.

    def load(self, worker: Worker, *, broken: bool = False) -> None:
        self.say(worker, {"event": "loaded", "pid": worker.pid, "broken": broken})

    def say(self, worker: Worker, message: WorkerEvent) -> None:
        said = worker.received(message)
        if said is not None and (event := worker_event(worker, said)) is not None:
            self.post(event)

    def exit(self, worker: Worker) -> None:
        if not worker.gone.done():
            worker.closed()
            self.post(WorkerGone(worker))

    def exit_soon(self, worker: Worker) -> None:
        asyncio.get_running_loop().call_soon(self.exit, worker)

    # The rest of the process model.

    def warm_up(self) -> None:
        self.warmed_up += 1

    def installed(self, workers: Collection[Worker]) -> None:
        self.installed_workers += workers

    def discard(self, workers: Collection[Worker]) -> None:
        self.discarded += workers

    def learn(self, modules: list[str]) -> None:
        self.learned += modules

    async def stop(self) -> None:
        self.stopped = True

    def kill(self) -> None:
        self.killed = True

    def close(self) -> None:
        pass


def config(**fields: Any) -> ServerConfig:
    """A run's configuration, the defaults of ``runserver`` with the reloader."""
    return ServerConfig(**{"backend": "uvicorn", "graceful_timeout": 1.0, **fields})


class Scenario:
    """One supervisor running on the current event loop, driven by the test."""

    def __init__(self, run_config: ServerConfig, *, socket_per_worker: bool = False) -> None:
        self.config = run_config
        self.clock = FakeClock()
        self.lines: list[str] = []
        self.warnings: list[str] = []
        self.checks: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        size = 1 if run_config.backend == "gunicorn" else run_config.workers
        self.supervisor = Supervisor(
            run_config,
            launcher=FakeLauncher,
            size=size,
            socket_per_worker=socket_per_worker,
            drain=Drain([], run_config.drain_delay, owns_port=False),
            checks=lambda: self.checks,
            clock=self.clock,
            say=self.lines.append,
            warn=self.warnings.append,
        )
        launcher = self.supervisor.launcher
        assert isinstance(launcher, FakeLauncher)
        self.launcher = launcher
        self.running: asyncio.Task[Outcome] | None = None

    async def start(self) -> Scenario:
        self.running = asyncio.ensure_future(self.supervisor.run())
        await self.settle()
        return self

    settle = staticmethod(settle)

    async def advance(self, seconds: float, *, step: float = 0.05) -> None:
        """Move the clock by ``seconds``, letting everything due run at each step."""
        moved = 0.0
        while moved < seconds:
            self.clock.advance(min(step, seconds - moved))
            moved += step
            await self.settle()

    @property
    def state(self) -> State:
        return self.supervisor.state

    @property
    def outcome(self) -> Outcome:
        assert self.running is not None and self.running.done(), f"still {self.state}"
        return self.running.result()

    def workers(self) -> list[Worker]:
        """Every worker started so far, in order."""
        return [worker for start in self.launcher.starts for worker in start.workers]

    @staticmethod
    def child(worker: Worker) -> FakeChild:
        assert isinstance(worker.connection, FakeChild)
        return worker.connection

    def serving(self) -> list[Worker]:
        return self.supervisor.pool.workers()

    async def load(self, *workers: Worker, broken: bool = False) -> None:
        for worker in workers or self.workers():
            if not worker.loaded.done():
                self.launcher.load(worker, broken=broken)
        await self.settle()

    async def pass_checks(self) -> None:
        self.checks.set_result(None)
        await self.settle()

    async def fail_checks(self, error: Exception) -> None:
        self.checks.set_exception(error)
        await self.settle()

    async def crash(self, worker: Worker) -> None:
        self.launcher.exit(worker)
        await self.settle()

    async def post(self, event: Event) -> None:
        self.supervisor.post(event)
        await self.settle()

    async def signal(self, signum: int = signal.SIGTERM) -> None:
        await self.post(StopAsked(signum))

    async def hangup(self) -> None:
        await self.post(HangupAsked())

    async def edit(self, *paths: str) -> None:
        await self.post(EditsSeen(frozenset(Path(p) for p in paths)))

    async def classify(self, action: str, *paths: str) -> None:
        """Every serving worker answers the pending ``changed`` question with ``action``."""
        for worker in self.serving():
            for request_id in list(worker.replies):
                self.launcher.say(
                    worker,
                    {
                        "event": "classified",
                        "id": request_id,
                        "action": action,  # type: ignore[typeddict-item]
                        "paths": list(paths),
                        "learned": [],
                    },
                )
        await self.settle()

    async def serving_started(self) -> list[Worker]:
        """Start with the checks passing and every first worker loaded: serving."""
        await self.start()
        await self.load()
        await self.pass_checks()
        assert self.state is State.SERVING, self.state
        return self.serving()


def in_loop(test: Callable[..., Any]) -> Callable[..., None]:
    """Run an ``async`` test on a new event loop; one still running after ``HANG`` seconds of
    real time has hung (nothing in these tests waits on real time)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), HANG))

    return run


#: Real seconds after which an in-process test counts as hung.
HANG = 20.0
