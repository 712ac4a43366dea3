"""A bounded load generator: threads of keep-alive httpx clients requesting one URL until told to
stop, or until a time or request limit, recording every request's outcome with timestamps.

Each thread may first enter a network namespace (:func:`tests.helpers.netns.enter`), so the load
comes from the load balancer's side of a simulated network. Failed means a status >= 500 or no
response at all (a connection or protocol error, a timeout).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from tests.helpers.netns import enter


@dataclass(frozen=True)
class Outcome:
    """One request: when it started and ended (``time.monotonic``), what came back."""

    start: float
    end: float
    status: int | None  # None: no response
    host: str = ""  # the "host" field of a JSON answer, when there is one
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 500


@dataclass
class Load:
    """``concurrency`` clients hitting ``url`` between :meth:`start` and :meth:`stop`."""

    url: str
    concurrency: int = 4
    namespace: str | None = None
    max_seconds: float = 90.0
    max_requests: int = 200_000
    timeout: float = 10.0
    method: str = "GET"
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, daemon=True, name=f"load-{n}")
            for n in range(self.concurrency)
        ]

    def start(self) -> Load:
        self._deadline = time.monotonic() + self.max_seconds
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)
        return self.outcomes

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _record(self, outcome: Outcome) -> bool:
        with self._lock:
            self.outcomes.append(outcome)
            return len(self.outcomes) < self.max_requests

    def _run(self) -> None:
        if self.namespace:
            enter(self.namespace)
        with httpx.Client(timeout=self.timeout) as client:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                start = time.monotonic()
                try:
                    response = client.request(self.method, self.url)
                except httpx.HTTPError as error:
                    outcome = Outcome(start, time.monotonic(), None, error=repr(error))
                else:
                    host = ""
                    if response.headers.get("content-type") == "application/json":
                        host = str(response.json().get("host", ""))
                    outcome = Outcome(
                        start, time.monotonic(), response.status_code, host, answered(response)
                    )
                if not self._record(outcome):
                    return

    def between(self, start: float, end: float) -> list[Outcome]:
        """Requests that started in ``[start, end)``."""
        with self._lock:
            return [o for o in self.outcomes if start <= o.start < end]

    def count(self, predicate: Callable[[Outcome], bool] = lambda o: True) -> int:
        with self._lock:
            return sum(1 for o in self.outcomes if predicate(o))

    def wait_answered(self, after: float, number: int = 1) -> None:
        """Block until ``number`` requests started after ``after`` got an answer (bounded)."""
        deadline = time.monotonic() + self.timeout * 3
        while time.monotonic() < deadline:
            if self.count(lambda o: o.start >= after and not o.failed) >= number:
                return
            time.sleep(0.02)
        raise TimeoutError(f"no {number} answers after {after}")


def answered(response: httpx.Response) -> str:
    """For a server error, who sent it and what it said (nginx's pages name nginx; uvicorn's
    says "Internal Server Error" in plain text; Django's is HTML)."""
    if response.status_code < 500:
        return ""
    return f"{response.headers.get('server', 'no Server header')}: {response.text[:160]!r}"
