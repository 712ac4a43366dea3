"""A client hammering a port from before anything listens on it, and the port to hammer.

Each of its threads opens a new connection, sends one request and waits for the status line,
over and over: a refused connection (nothing listens yet, or any more) is tried again a moment
later, and an accepted one waits in the listen backlog as long as it takes to be answered. Every
status line is stamped (``time.monotonic``) when it arrives, after ``settle()`` has run: given
the server's ``Output.catch_up``, whatever the server printed before it answered is then
stamped earlier than the answer, so comparing stamps orders events rather than test threads.

``unused_port()`` picks a port below the kernel's ephemeral range: no server started on port 0
can be given it, and no client connection can take it as its own port, which would make a
refused connect to it connect to itself.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.server import port_is_free

#: Between two connections that got no answer: a steady knock, not a busy loop.
PAUSE = 0.01


@dataclass(frozen=True)
class Answer:
    """One status line: when its connection was opened, when the line arrived, the status."""

    opened: float
    stamp: float
    status: int


@dataclass
class Hammer:
    """``clients`` threads requesting ``path`` on ``127.0.0.1:port`` from :meth:`start` to
    :meth:`stop`."""

    port: int
    path: str = "/"
    clients: int = 2
    settle: Callable[[], None] = lambda: None
    answers: list[Answer] = field(default_factory=list)
    #: Connections refused, reset or closed without a status line.
    unanswered: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._request = (
            f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nConnection: close\r\n\r\n"
        ).encode()
        self._threads = [
            threading.Thread(target=self._run, daemon=True, name=f"hammer-{n}")
            for n in range(self.clients)
        ]

    def start(self) -> Hammer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Answer]:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        return self.answers

    def __enter__(self) -> Hammer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def first(self) -> Answer | None:
        """The earliest answer so far."""
        with self._lock:
            return min(self.answers, key=lambda answer: answer.stamp, default=None)

    def _run(self) -> None:
        while not self._stop.is_set():
            opened = time.monotonic()
            status = self._ask()
            if status is None:
                with self._lock:
                    self.unanswered += 1
                self._stop.wait(PAUSE)
                continue
            self.settle()
            answer = Answer(opened, time.monotonic(), status)
            with self._lock:
                self.answers.append(answer)

    def _ask(self) -> int | None:
        """One request's status; ``None`` when none came (or the hammer was stopped)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(self._request)
                sock.settimeout(0.1)  # to see a stop while waiting in the backlog
                head = b""
                while b"\r\n" not in head:
                    try:
                        chunk = sock.recv(1024)
                    except TimeoutError:
                        if self._stop.is_set():
                            return None
                        continue
                    if not chunk:
                        return None
                    head += chunk
        except OSError:
            return None
        status_line = head.split(b"\r\n", 1)[0].split()
        return int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0


def unused_port() -> int:
    """A free port below the ephemeral range (see above)."""
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    candidates = range(10_000, low) if low > 11_000 else range(high + 1, 65_536)
    for port in random.sample(candidates, 100):
        if port_is_free(port):
            return port
    raise AssertionError(f"no free port in {candidates}")
