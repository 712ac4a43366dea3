"""A project writing in its own tree while its workers start never restarts them.

While a worker starts and in its first seconds, several of its threads ask which files its
modules come from: the one answering the supervisor about each batch of changes, the one telling
it what to watch, the timer reporting the libraries it went on to import (a second after start),
while request threads import more modules. Each try below makes all of that happen at once on a
busy machine: a thread writes what running projects write beside their code (a file cache like
django-debug-toolbar's, a log, the SQLite database and its journal) from before the banner, and
a client requests a view that imports new modules on every request. Then an edit of a module
marks the end: its "reloading" line must be the only one, and every answer before it must have
come from the same worker.
"""

from __future__ import annotations

import re
import threading
import time

import httpx

from tests.helpers.data_writes import LAZY_MODULES, PER_REQUEST, DataWriter, install
from tests.helpers.edits import RELOADING, write
from tests.helpers.polling import wait_for
from tests.helpers.server import BANNER_URL
from tests.helpers.spinning import busy_cores

#: Server starts per backend, both cores busy. Before the fix, 6 starts of 80 (16 per backend)
#: reloaded on a data file or printed the race's traceback: 4 suffice to see it most times.
TRIES = 4
#: Seconds between thread switches in the server's processes (Python's default: 0.005): more
#: often, so that a race between the worker's threads shows in fewer starts.
SWITCH_INTERVAL = 1e-5
#: Two workers: twice the threads racing in each start.
WORKERS = 2
#: How long the client keeps requesting after the first answer: past the worker's report of the
#: libraries it learned (a second after it starts), so that report runs among the writes.
FIRST_SECONDS = 1.5


class LazyClient:
    """Requests ``/lazy/`` from a thread, each request importing the next modules."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pids: set[int] = set()
        self.first_answer: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lazy-client")
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            first = 0
            while not self._stop.is_set():
                try:
                    response = client.get(f"{self.url}/lazy/", params={"from": first})
                except httpx.TransportError:
                    continue  # not accepting yet
                if response.status_code == 200:
                    self.pids.add(response.json()["pid"])
                    self.first_answer = self.first_answer or time.monotonic()
                    first = (first + PER_REQUEST) % LAZY_MODULES

    def served_first_seconds(self) -> bool:
        return (
            self.first_answer is not None and time.monotonic() > self.first_answer + FIRST_SECONDS
        )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def one_start(start, project, backend, views) -> str:
    """Start, write and request, mark the end with an edit; what went wrong ("" if nothing)."""
    with DataWriter(project) as writer:
        server = start("--backend", backend, "--workers", str(WORKERS))
        banner = wait_for(lambda: BANNER_URL.search(server.stdout.text), what="the banner")
        client = LazyClient(f"http://127.0.0.1:{banner.group(3)}")
        try:
            wait_for(client.served_first_seconds, what="the worker's first seconds")
        finally:
            client.stop()
    assert writer.error is None, writer.error
    write(views, views.read_text() + "\n# the end of the writes\n")
    server.wait_output(f"lazy_views.py {RELOADING}")
    output = server.output
    server.kill()
    reloads = re.findall(rf"^.*{re.escape(RELOADING)}$", output, re.MULTILINE)
    problems = []
    if len(reloads) > 1:
        problems.append(f"reloaded before the edit: {reloads[0]!r}")
    if "Traceback" in output:
        problems.append("a traceback")
    if len(client.pids) > WORKERS:
        problems.append(f"answered by more than {WORKERS} workers: {sorted(client.pids)}")
    return "; ".join(problems) + (f"\n{output}" if problems else "")


def test_data_written_while_workers_start_reloads_nothing(start, project, backend):
    views = install(project, switch_interval=SWITCH_INTERVAL)
    failures = []
    with busy_cores():
        for _try in range(TRIES):
            if problem := one_start(start, project, backend, views):
                failures.append(problem)
    assert not failures, f"{len(failures)} of {TRIES} starts went wrong; the first: {failures[0]}"
