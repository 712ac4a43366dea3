"""How the reliability tests talk to a server: a client that keeps requesting and counts what
went wrong, and raw socket exchanges for input no HTTP client would send. (What ``/proc`` shows
of a process is in ``tests/helpers/procfs.py``.)
"""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from tests.helpers.polling import DEADLINE

# -- a client that never stops asking -----------------------------------------------------------


@dataclass
class Poller:
    """GETs ``url`` in a loop on a thread, each request on a new connection (as a browser's
    reload may), and counts the answers: a refused connection, any other failure (an error, a
    status other than 200, a body ``valid`` rejects), or a good answer."""

    url: str
    valid: Callable[[str], bool] = lambda _text: True
    ok: int = 0
    refused: int = 0
    failures: list[str] = field(default_factory=list)
    last: tuple[int, str] | None = None
    bodies: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def total(self) -> int:
        return self.ok + self.refused + len(self.failures)

    def summary(self) -> str:
        return f"{self.refused} refused / {len(self.failures)} failed of {self.total} requests"

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(DEADLINE)

    def _run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(limits=limits, timeout=DEADLINE) as client:
            while not self._stop.is_set():
                try:
                    response = client.get(self.url)
                except httpx.ConnectError:
                    self.refused += 1
                    continue
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                    continue
                self.last = (response.status_code, response.text)
                if response.status_code == 200 and self.valid(response.text):
                    self.ok += 1
                    self.bodies[response.text] += 1
                else:
                    self.failures.append(f"{response.status_code} {response.text[:200]!r}")


# -- raw HTTP -----------------------------------------------------------------------------------


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)


def answer_to(port: int, data: bytes, timeout: float = 10.0) -> str:
    """Send ``data`` on a new connection and say how the server answered: its status code
    (``"400"``), ``"closed"`` (closed or reset without a status line) or ``"no answer"`` (open
    and silent after ``timeout`` seconds)."""
    with connect(port) as sock:
        received = b""
        try:
            sock.sendall(data)
            sock.settimeout(timeout)
            while b"\r\n" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    return "closed"
                received += chunk
        except TimeoutError:
            return "no answer"
        except OSError:
            return "closed"
    status_line = received.split(b"\r\n", 1)[0].split()
    if len(status_line) >= 2 and status_line[0].startswith(b"HTTP/"):
        return status_line[1].decode(errors="replace")
    return f"not HTTP: {received[:40]!r}"
