"""The supervisor's states and the events its loop handles (see :mod:`supervisor`).

Every event reaches the supervisor on one queue, from a child's reader, a signal handler, the
file watcher, a timer or one of the supervisor's own operations when it ends; an operation never
changes the supervisor's state itself, its event does.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django_asgiserve.insight.reload_timeline import ReloadTimeline
from django_asgiserve.process.protocol import RecycleEvent, WorkerEvent
from django_asgiserve.reload.changes import Action
from django_asgiserve.supervisor.children import Worker, read_messages
from django_asgiserve.supervisor.launches import Launch


class State(enum.Enum):
    #: runserver's checks run; the first workers load meanwhile, told to serve only once they end.
    CHECKING = "checking"
    #: The checks are over; no worker has loaded yet.
    STARTING = "starting"
    SERVING = "serving"
    #: Serving, while workers with new code load (they replace the serving ones once loaded).
    RELOADING = "reloading"
    #: SIGTERM with --drain-delay: serving (the health path saying 503) until the delay is over.
    DRAINING = "draining"
    #: Every child told to stop, and killed past its grace period.
    STOPPING = "stopping"
    STOPPED = "stopped"


@dataclass(frozen=True, eq=False)
class ChecksDone:
    """runserver's checks, migrations warning and banner are done; ``error``: why they failed."""

    error: BaseException | None = None


@dataclass(frozen=True, eq=False)
class LaunchDone:
    """Each worker of ``launch`` has loaded, or is gone (or past its bound, and killed)."""

    launch: Launch


@dataclass(frozen=True, eq=False)
class WorkerGone:
    """``worker``'s channel closed: it exited, whatever the reason."""

    worker: Worker


@dataclass(frozen=True, eq=False)
class RecycleAsked:
    """``worker`` is past --max-requests or --max-worker-memory."""

    worker: Worker
    request: RecycleEvent


@dataclass(frozen=True, eq=False)
class RootsToWatch:
    """A worker's Django asks for these directories to be watched."""

    roots: list[str]


@dataclass(frozen=True, eq=False)
class ModulesLearned:
    """A worker imported these library modules that its preloader had not."""

    modules: list[str]


@dataclass(frozen=True, eq=False)
class EditsSeen:
    paths: frozenset[Path]


@dataclass(frozen=True, eq=False)
class EditsClassified:
    """What the serving workers say ``paths`` changing means (the files that call for it)."""

    action: Action
    paths: list[str]
    #: Everything the batch held, for putting back what was judged too early.
    batch: frozenset[Path]
    timeline: ReloadTimeline = field(default_factory=ReloadTimeline)


@dataclass(frozen=True, eq=False)
class StopAsked:
    """SIGINT or SIGTERM."""

    signum: int


@dataclass(frozen=True, eq=False)
class HangupAsked:
    """SIGHUP: new workers with fresh code, the old ones retired once they serve."""


@dataclass(frozen=True, eq=False)
class DrainOver:
    """The drain delay has passed and the backlog has been taken."""


@dataclass(frozen=True, eq=False)
class BackoffOver:
    """The crash back-off of ``seat`` has passed."""

    seat: int


@dataclass(frozen=True, eq=False)
class AllStopped:
    """Every child has exited (or was killed)."""


@dataclass(frozen=True, eq=False)
class OperationFailed:
    """One of the supervisor's operations raised (a bug): it is reported, never raised into the
    loop."""

    name: str
    error: BaseException


Event = (
    ChecksDone
    | LaunchDone
    | WorkerGone
    | RecycleAsked
    | RootsToWatch
    | ModulesLearned
    | EditsSeen
    | EditsClassified
    | StopAsked
    | HangupAsked
    | DrainOver
    | BackoffOver
    | AllStopped
    | OperationFailed
)


def worker_event(worker: Worker, message: WorkerEvent) -> Event | None:
    """The supervisor's event for a message from ``worker`` (answers are settled on the worker
    itself, see :meth:`Worker.received`)."""
    if message["event"] == "recycle":
        return RecycleAsked(worker, message)
    if message["event"] == "watch":
        return RootsToWatch(message["roots"])
    if message["event"] == "learned":
        return ModulesLearned(message["modules"])
    if message["event"] == "classified" and message["learned"]:
        return ModulesLearned(message["learned"])
    return None


async def follow(
    worker: Worker, reader: asyncio.StreamReader, post: Callable[[Event], None]
) -> None:
    """Settle ``worker``'s answers and post its news as events, until its channel closes (then
    it is marked closed; its process model posts :class:`WorkerGone` once it has cleaned up)."""

    def heard(message: WorkerEvent) -> None:
        said = worker.received(message)
        if said is not None and (event := worker_event(worker, said)) is not None:
            post(event)

    try:
        await read_messages(reader, heard)
    finally:
        worker.closed()
