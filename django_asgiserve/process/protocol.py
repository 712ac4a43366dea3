"""Every message between the supervisor, its preloader, its workers and (inside a gunicorn
worker) the relay to gunicorn's own workers: one definition of each, and their framing.

A message is one JSON object on one line, over a Unix socket pair. Commands carry ``cmd``,
events (the answers and reports) carry ``event``; the relay's questions and answers carry
neither, since each end of a relay speaks one kind only. A ``fork`` command travels with the
new worker's end of its socket pair as a passed file descriptor (``SCM_RIGHTS``).

A child also learns from its channel that its supervisor has gone: the read returns
end-of-file the moment the supervisor's end is closed, whatever killed it.

============== =================== ============================================================
from -> to     message             meaning
============== =================== ============================================================
supervisor ->  ``fork``            fork a worker for ``slot`` and ``generation`` (fd attached)
preloader      ``import``          import these library ``modules`` before the next fork
preloader ->   ``booted``          Django is set up: ``can_fork``, ``broken``, ``preloaded``
supervisor     ``forked``          the worker forked for the last ``fork`` is ``pid``
               ``imported``        done importing: ``can_fork``, ``preloaded`` now
supervisor ->  ``serve``           start serving (the start-up checks are over); after an edit,
                                   ``since``: when it was seen (monotonic clock)
worker         ``changed``         what does the change of ``paths`` mean? (request ``id``)
               ``stop``            stop gracefully
               ``drain``           keep serving, the health path answering 503 (--drain-delay)
               ``begin``           (a spare spawned worker) load ``generation`` for ``slot``
worker ->      ``loaded``          loaded (``broken``: the error page), waiting for ``serve``
supervisor     ``watch``           watch these ``roots`` for me
               ``learned``         I imported these library ``modules`` the preloader had not
               ``classified``      the answer to ``changed`` ``id``: ``action`` and ``paths``
               ``stopping``        I stopped accepting (the answer to ``stop``)
               ``recycle``         replace me: past a limit (``reason``: max-requests, with
                                   ``served``; max-memory, with ``rss_mb`` and
                                   ``start_rss_mb``), measured in process ``pid``
relay          question            ``id`` and ``paths``, to each of gunicorn's workers
               answer              ``id``, ``action`` and ``paths`` back
============== =================== ============================================================
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from typing import Generic, Literal, TypedDict, TypeVar, cast

from django_asgiserve.reload.changes import Action


class ForkCommand(TypedDict):
    cmd: Literal["fork"]
    #: The index of the one socket the worker serves, or None: every socket.
    slot: int | None
    generation: str


class ImportCommand(TypedDict):
    cmd: Literal["import"]
    modules: list[str]


class BootedEvent(TypedDict):
    event: Literal["booted"]
    pid: int
    can_fork: bool
    broken: bool
    preloaded: list[str]


class ForkedEvent(TypedDict):
    event: Literal["forked"]
    pid: int


class ImportedEvent(TypedDict):
    event: Literal["imported"]
    can_fork: bool
    preloaded: list[str]


class ServeCommand(TypedDict):
    cmd: Literal["serve"]
    #: After an edit: when the supervisor saw it (``time.monotonic()``, one clock per machine).
    since: float | None


class ChangedCommand(TypedDict):
    cmd: Literal["changed"]
    id: int
    paths: list[str]


class StopCommand(TypedDict):
    cmd: Literal["stop"]


class DrainCommand(TypedDict):
    cmd: Literal["drain"]


class BeginCommand(TypedDict):
    """To a spare spawned worker (libraries imported, the project not): load the project for
    ``generation``, serving ``slot``'s socket (or every one: None)."""

    cmd: Literal["begin"]
    generation: str
    slot: int | None


class LoadedEvent(TypedDict):
    event: Literal["loaded"]
    pid: int
    broken: bool


class WatchEvent(TypedDict):
    event: Literal["watch"]
    roots: list[str]


class LearnedEvent(TypedDict):
    event: Literal["learned"]
    modules: list[str]


class ClassifiedEvent(TypedDict):
    event: Literal["classified"]
    id: int
    action: Action
    paths: list[str]
    learned: list[str]


class StoppingEvent(TypedDict):
    event: Literal["stopping"]


class RequestsRecycleEvent(TypedDict):
    event: Literal["recycle"]
    reason: Literal["max-requests"]
    #: The worker that counted.
    pid: int
    #: Requests and WebSocket connections served (with gunicorn, by all its workers).
    served: int


class MemoryRecycleEvent(TypedDict):
    event: Literal["recycle"]
    reason: Literal["max-memory"]
    #: The process past the limit: the worker, or one it forked (one of gunicorn's workers).
    pid: int
    #: Its resident memory, in MiB.
    rss_mb: int
    #: The worker's resident memory when it started serving, in MiB (see process.memory).
    start_rss_mb: int


RecycleEvent = RequestsRecycleEvent | MemoryRecycleEvent
RecycleReason = Literal["max-requests", "max-memory"]


class RelayQuestion(TypedDict):
    id: int
    paths: list[str]


class RelayAnswer(TypedDict):
    id: int
    action: Action
    paths: list[str]


PreloaderCommand = ForkCommand | ImportCommand
PreloaderEvent = BootedEvent | ForkedEvent | ImportedEvent
WorkerCommand = ServeCommand | ChangedCommand | StopCommand | DrainCommand | BeginCommand
WorkerEvent = (
    LoadedEvent | WatchEvent | LearnedEvent | ClassifiedEvent | StoppingEvent | RecycleEvent
)
RelayMessage = RelayQuestion | RelayAnswer
Message = PreloaderCommand | PreloaderEvent | WorkerCommand | WorkerEvent | RelayMessage

Outgoing = TypeVar("Outgoing", bound=Message)
Incoming = TypeVar("Incoming", bound=Message)


def encode(message: Message) -> bytes:
    """``message`` as one line on the wire."""
    return json.dumps(message).encode() + b"\n"


def decode(line: bytes | bytearray) -> Message:
    """The message of one line (``ValueError`` if it is not a JSON object)."""
    message = json.loads(line)
    if not isinstance(message, dict):
        raise ValueError(f"not a message: {line!r}")
    return cast(Message, message)


class Channel(Generic[Outgoing, Incoming]):
    """Blocking, thread-safe message passing on a child's end of a socket pair: it sends
    ``Outgoing`` messages and receives ``Incoming`` ones."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._reader = sock.makefile("rb")
        self._send_lock = threading.Lock()

    def send(self, message: Outgoing) -> bool:
        """Send ``message``; ``False`` if the other end is gone (its reader will notice too)."""
        data = encode(message)
        with self._send_lock:
            try:
                self.sock.sendall(data)
            except OSError:
                return False
        return True

    def receive(self) -> Incoming | None:
        """The next message, or ``None`` once the other end is closed (or reset)."""
        try:
            line = self._reader.readline()
        except OSError:
            return None
        if not line:
            return None
        return cast(Incoming, decode(line))

    def receive_with_fds(self, max_fds: int = 1) -> tuple[Incoming | None, list[int]]:
        """A message that may carry file descriptors.

        Only for a channel whose sender waits for an answer before it sends again, so that a
        read never takes part of the next message (and its descriptors) along.
        """
        if sys.platform == "win32":  # the fork model's preloader only: not there
            return None, []
        try:
            head, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, max_fds)
            line = bytearray(head)
            while line and not line.endswith(b"\n"):
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                line += chunk
        except OSError:
            return None, []
        if not line.endswith(b"\n"):
            return None, fds
        return cast(Incoming, decode(line)), fds

    def close(self) -> None:
        self._reader.close()
        self.sock.close()


#: The preloader's end; a worker's end; a gunicorn worker's end of its relay.
PreloaderChannel = Channel[PreloaderEvent, PreloaderCommand]
WorkerChannel = Channel[WorkerEvent, WorkerCommand]
RelayChannel = Channel[RelayAnswer, RelayQuestion]
