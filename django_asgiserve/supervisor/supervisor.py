"""The supervisor: the process the user started. It holds the listening sockets for its whole
life and swaps the processes that serve them; nothing here imports user code.

Like gunicorn's arbiter it is one loop: every event (a child's message or exit, the checks'
result, a batch of edits, a signal, a timer, an operation that ended) arrives on one queue and
is handled by one ``handle_*`` method that decides for every :class:`State`. Long operations
(starting workers, a drain's delay, judging edits, retiring a worker, the stop) run as the
supervisor's tasks (:mod:`tasks`) and report back with events. The states, the events and what
each does in each state are tabled in ``docs/architecture.md``.

Collaborators, each owning its own state: the process model that starts children
(:mod:`launches`, :mod:`fork_model`), the pool of workers by seat (:mod:`pool`), the edits
(:mod:`edits`), the crash back-off (:mod:`crashes`), recycling (:mod:`recycling`), the drain
(:mod:`draining`), the counts for --metrics (:mod:`tally`).
"""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import assert_never

from django_asgiserve.insight.reload_timeline import ReloadTimeline
from django_asgiserve.run_config import ServerConfig
from django_asgiserve.supervisor.children import Worker
from django_asgiserve.supervisor.clock import Clock
from django_asgiserve.supervisor.draining import Drain
from django_asgiserve.supervisor.edits import STALLED_AFTER, Edits, reloading_line
from django_asgiserve.supervisor.events import (
    AllStopped,
    BackoffOver,
    ChecksDone,
    DrainOver,
    EditsClassified,
    EditsSeen,
    Event,
    HangupAsked,
    LaunchDone,
    ModulesLearned,
    OperationFailed,
    RecycleAsked,
    RootsToWatch,
    State,
    StopAsked,
    WorkerGone,
)
from django_asgiserve.supervisor.launches import Launcher, Purpose
from django_asgiserve.supervisor.pool import Pool
from django_asgiserve.supervisor.staff import Staff
from django_asgiserve.supervisor.tally import WorkerTally
from django_asgiserve.supervisor.tasks import Tasks

NOT_LOADED = "The project could not be loaded (see the error above)."
#: Where edits are judged only once the launch of new code has stalled.
STARTING_OR_RELOADING = (State.CHECKING, State.STARTING, State.RELOADING)

Say = Callable[[str], None]


@dataclass
class Outcome:
    """How the run ended: the command's exit, and why it failed."""

    failure: str | None = None
    #: The start-up checks' error, with --noreload (raised by the command as it is).
    check_error: BaseException | None = None

    @property
    def code(self) -> int:
        return 1 if self.failure or self.check_error else 0


class Supervisor:
    def __init__(
        self,
        config: ServerConfig,
        *,
        launcher: Callable[[Callable[[Event], None], Tasks], Launcher],
        size: int,
        socket_per_worker: bool,
        drain: Drain,
        checks: Callable[[], Awaitable[None]],
        clock: Clock,
        say: Say,
        warn: Say,
        tally: WorkerTally | None = None,
    ) -> None:
        self.config = config
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.tasks = Tasks(self.post)
        self.launcher = launcher(self.post, self.tasks)
        self.pool = Pool.for_run(
            config, self.launcher, self.tasks, clock, size=size, socket_per_worker=socket_per_worker
        )
        self.drain = drain
        self.checks = checks
        self.clock = clock
        self.say = say
        self.warn = warn
        self.staff = Staff(
            self,
            self.pool,
            config,
            clock=clock,
            tasks=self.tasks,
            drain=drain,
            tally=tally or WorkerTally(),
            say=say,
            warn=warn,
        )
        self.edits = Edits()
        self.state = State.CHECKING
        self.outcome = Outcome()
        #: The reloader's watcher, given the roots workers ask for (see :mod:`serving`).
        self.watch: Callable[[list[str]], None] = lambda roots: None
        #: Run as the stop begins (the watcher stops).
        self.on_stop: list[Callable[[], None]] = []

    def post(self, event: Event) -> None:
        self.queue.put_nowait(event)

    async def run(self) -> Outcome:
        """Start, and handle events until every child has stopped."""
        self.tasks.start(self.checking(), "checks")
        self.pool.launch(Purpose.FIRST, range(self.pool.size))
        try:
            while self.state is not State.STOPPED:
                event = await self.queue.get()
                try:
                    dispatch(self, event)
                except Exception as error:  # a bug: said, and the run ends in order
                    self.post(OperationFailed(f"handling of {type(event).__name__}", error))
        finally:
            self.tasks.cancel_all()
            self.launcher.close()
        return self.outcome

    async def checking(self) -> ChecksDone:
        try:
            await self.checks()
        except Exception as error:  # --noreload: runserver's exit (with it they print it)
            return ChecksDone(error)
        return ChecksDone()

    # -- start-up ----------------------------------------------------------------------------

    def handle_checks_done(self, event: ChecksDone) -> None:
        if self.state is not State.CHECKING:
            return
        if event.error is not None and not self.config.reload:
            self.outcome.check_error = event.error
            return self.stop()
        if event.error is not None:  # with the reloader an edit may fix it: serve meanwhile
            self.warn(f"System checks could not run: {event.error!r}")
        if self.pool.serving:
            self.go_serving()
        else:
            self.state = State.STARTING

    def go_serving(self) -> None:
        """The checks are over and workers have loaded: they serve from now on."""
        self.state = State.RELOADING if self.pool.code_launch() else State.SERVING
        for worker in self.pool.untold():
            self.staff.serve(worker)
        self.launcher.warm_up()
        if not self.config.reload and not self.pool.serves_project():
            self.stop(NOT_LOADED)  # without the reloader no edit can bring the project back
        else:
            self.judge_edits()

    def reloaded(self) -> None:
        self.state = State.SERVING
        self.judge_edits()

    # -- edits -------------------------------------------------------------------------------

    def handle_edits_seen(self, event: EditsSeen) -> None:
        self.edits.add(event.paths)
        self.judge_edits()

    def judge_edits(self) -> None:
        """Judge pending edits with the serving workers, unless new code is loading (then
        once it serves, or at once if it has stalled: see :mod:`edits`)."""
        launch = self.pool.code_launch()
        stalled = launch is not None and self.clock.now() - launch.began > STALLED_AFTER
        now = self.state is State.SERVING or (stalled and self.state in STARTING_OR_RELOADING)
        if not now or not self.edits.can_judge():
            return
        batch = self.edits.take()
        self.tasks.start(self.edits.classify(batch, self.pool.workers(), self.clock), "classify")

    def handle_edits_classified(self, event: EditsClassified) -> None:
        early = self.state is not State.SERVING  # judged while new code was loading
        ending = self.state in (State.DRAINING, State.STOPPING, State.STOPPED)
        if event.action == "none" or ending:
            self.edits.judged(event.batch, keep=early and not ending)
            return self.judge_edits() if not early else None
        self.edits.judged()
        paths = [Path(p) for p in event.paths] or sorted(event.batch)
        self.say(reloading_line(paths))
        self.reload(fresh=event.action == "cold", changed=paths, timeline=event.timeline)

    def reload(
        self, *, fresh: bool, changed: Iterable[Path] = (), timeline: ReloadTimeline | None = None
    ) -> None:
        """New code for every seat (the launch of new code under way, if any, given up)."""
        first = self.state in (State.CHECKING, State.STARTING)
        self.pool.relaunch(first=first, fresh=fresh, changed=changed, timeline=timeline)
        if self.state is State.SERVING:
            self.state = State.RELOADING

    # -- signals and the stop ----------------------------------------------------------------

    def handle_hangup_asked(self, event: HangupAsked) -> None:
        if self.state in (State.SERVING, State.RELOADING):
            self.reload(fresh=True)

    def handle_stop_asked(self, event: StopAsked) -> None:
        if self.state in (State.DRAINING, State.STOPPING, State.STOPPED):
            self.kill_everything()  # a second signal: at once
            return self.stop()
        serving = self.state in (State.SERVING, State.RELOADING) and self.pool.serves_project()
        if self.drain.delay > 0 and serving:
            self.state = State.DRAINING
            self.drain.begin(self.pool.workers())
            self.tasks.start(self.drain.wait(self.clock), "drain")
        else:
            self.stop()

    def handle_drain_over(self, event: DrainOver) -> None:
        if self.state is State.DRAINING:
            self.stop()

    def stop(self, failure: str | None = None) -> None:
        """Stop every child (gracefully those that served); ``failure``: why the command
        fails."""
        if self.state in (State.STOPPING, State.STOPPED):
            return
        self.outcome.failure = self.outcome.failure or failure
        self.state = State.STOPPING
        children = self.pool.everyone()
        for launch in list(self.pool.launches):
            self.pool.abandon(launch)
        for hook in self.on_stop:
            hook()
        self.tasks.cancel_all()
        self.tasks.start(self.stopping(children), "stop")

    async def stopping(self, children: list[Worker]) -> AllStopped:
        await self.pool.stop(children, self.drain.close_port(children))
        return AllStopped()

    def kill_everything(self) -> None:
        self.pool.kill(self.pool.everyone())

    def handle_operation_failed(self, event: OperationFailed) -> None:
        error = event.error
        self.warn("".join(traceback.format_exception(type(error), error, error.__traceback__)))
        if self.state is State.STOPPING:  # the stop itself failed: end what is left
            self.kill_everything()
            self.state = State.STOPPED
        else:
            self.stop(f"The supervisor's {event.name} failed: {error!r} (a bug in asgiserve).")


def dispatch(supervisor: Supervisor, event: Event) -> None:
    """Hand ``event`` to its handler (the ones about workers are the :class:`Staff`'s)."""
    match event:
        case ChecksDone():
            supervisor.handle_checks_done(event)
        case LaunchDone() | WorkerGone() | RecycleAsked() | BackoffOver():
            supervisor.staff.handle(event)
        case RootsToWatch():
            supervisor.watch(event.roots)
        case ModulesLearned():
            supervisor.launcher.learn(event.modules)
        case EditsSeen():
            supervisor.handle_edits_seen(event)
        case EditsClassified():
            supervisor.handle_edits_classified(event)
        case StopAsked():
            supervisor.handle_stop_asked(event)
        case HangupAsked():
            supervisor.handle_hangup_asked(event)
        case DrainOver():
            supervisor.handle_drain_over(event)
        case AllStopped():
            supervisor.state = State.STOPPED
        case OperationFailed():
            supervisor.handle_operation_failed(event)
        case _:
            assert_never(event)
