"""Production stops and restarts, on every backend: SIGTERM lets in-flight requests finish,
SIGHUP replaces the workers under continuous requests without refusing or failing one."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import signal
import subprocess
import threading
import time

import httpx
import pytest

from django_asgiserve.sockets import BACKLOG
from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.server import Server


def pid_of_worker(server: Server) -> int:
    return int(server.get("/pid/").text)


class Poller:
    """Continuous requests on fresh connections from a thread; keeps every outcome."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.results: list[tuple[int | None, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    def poll(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=self.server.url, limits=limits, timeout=DEADLINE) as client:
            while not self.stop.is_set():
                try:
                    response = client.get("/pid/")
                except httpx.HTTPError as error:
                    self.results.append((None, repr(error)))
                else:
                    self.results.append((response.status_code, response.text))

    def finish(self) -> list[tuple[int | None, str]]:
        self.stop.set()
        self.thread.join(DEADLINE)
        return self.results


#: A slow view that says when it has started, so SIGTERM is sent with the request in a worker.
ANNOUNCED_SLOW_VIEW = """

import asyncio as _asyncio
import pathlib as _pathlib

from django.http import HttpResponse as _HttpResponse


async def _announced_slow(request):
    _pathlib.Path(request.GET["marker"]).touch()
    await _asyncio.sleep(2)
    return _HttpResponse("slow done")


urlpatterns.append(path("announced-slow/", _announced_slow))
"""


def test_sigterm_lets_a_slow_request_finish(start, project, backend, tmp_path, process_model):
    urls = project / "testproject" / "urls.py"
    urls.write_text(urls.read_text() + ANNOUNCED_SLOW_VIEW)
    marker = tmp_path / "started"
    server = start("--noreload", "--skip-checks", "--backend", backend, *process_model)
    server.wait_serving()
    outcome: list[object] = []

    def slow_request() -> None:
        try:
            url = f"{server.url}/announced-slow/?marker={marker}"
            outcome.append(httpx.get(url, timeout=DEADLINE))
        except httpx.HTTPError as error:
            outcome.append(error)

    client = threading.Thread(target=slow_request, daemon=True)
    client.start()
    wait_for(marker.exists, what="the slow request to start in a worker")
    server.process.send_signal(signal.SIGTERM)
    client.join(DEADLINE)
    assert outcome, "the slow request never finished"
    response = outcome[0]
    assert isinstance(response, httpx.Response), (response, server.output)
    assert (response.status_code, response.text) == (200, "slow done")
    assert server.wait_exit() == 0, server.output


def test_sighup_replaces_workers_without_refusing_a_request(start, backend, process_model):
    server = start("--noreload", "--skip-checks", "--backend", backend, *process_model)
    server.wait_serving()
    old_pid = pid_of_worker(server)
    poller = Poller(server)
    wait_for(lambda: len(poller.results) > 5, what="requests before the SIGHUP")
    server.process.send_signal(signal.SIGHUP)
    wait_for(
        lambda: poller.results and poller.results[-1][1] not in ("", str(old_pid)),
        what="a new worker answering",
    )
    # Keep polling a little past the switch, while the old worker retires.
    served = len(poller.results)
    wait_for(lambda: len(poller.results) > served + 20, what="requests after the switch")
    results = poller.finish()
    failures = [result for result in results if result[0] != 200]
    assert not failures, f"{len(failures)}/{len(results)} failed: {failures[:5]}\n{server.output}"
    assert server.process.poll() is None, "SIGHUP stopped the server"


def test_sighup_with_two_workers_refuses_none(start, backend, process_model):
    """Each worker accepts on a socket of its own (SO_REUSEPORT twins; gunicorn's arbiter shares
    one): every socket keeps being served while the workers are replaced."""
    server = start(
        "--noreload", "--skip-checks", "--backend", backend, "--workers", "2", *process_model
    )
    server.wait_serving()
    poller = Poller(server)
    wait_for(lambda: len({text for _, text in poller.results}) >= 2, what="both workers")
    old_pids = {text for _, text in poller.results}
    server.process.send_signal(signal.SIGHUP)
    # Each socket is served by its new worker, and the old workers are gone.
    wait_for(
        lambda: (
            len(recent := {text for _, text in poller.results[-40:]}) >= 2 and not recent & old_pids
        ),
        what="two new workers answering, and only them",
    )
    results = poller.finish()
    failures = [result for result in results if result[0] != 200]
    assert not failures, f"{len(failures)}/{len(results)} failed: {failures[:5]}\n{server.output}"


#: A view whose every request ends the worker process, as a crash in a C extension would.
CRASHING_VIEW = """

import os as _os


def _crash(request):
    _os._exit(3)


urlpatterns.append(path("crash/", _crash))
"""


def test_a_worker_that_keeps_dying_is_restarted_with_a_back_off(start, project):
    urls = project / "testproject" / "urls.py"
    urls.write_text(urls.read_text() + CRASHING_VIEW)
    # With the reloader: with --noreload five crashes in a row with none serving end the
    # command (see test_failfast.py); with it, an edit may still fix the project.
    server = start("--skip-checks").wait_serving()
    seen: list[float] = []
    stop = threading.Event()

    def crash_it() -> None:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(server.url + "/crash/", timeout=DEADLINE)

    def crashes() -> int:
        count = server.output.count("exited unexpectedly")
        while len(seen) < count:
            seen.append(time.monotonic())
        return count

    client = threading.Thread(target=crash_it, daemon=True)
    client.start()
    try:
        wait_for(lambda: crashes() >= 5, what="five crashes")
    finally:
        stop.set()
    assert server.process.poll() is None, "the supervisor went down with its workers"
    # The waits between restarts grow (0.1 s, 0.2 s, 0.4 s, 0.8 s...): a tight loop would
    # restart as fast as a worker can die.
    gaps = [later - earlier for earlier, later in itertools.pairwise(seen)]
    assert gaps[-1] > 0.5, f"restarted without backing off: gaps {gaps}\n{server.output}"
    wait_for(lambda: server.try_get("/sync/") is not None, what="a worker serving again")
    server.signal_group(signal.SIGINT)
    assert server.wait_exit() == 0, server.output


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to read a backlog")
def test_the_listen_backlog_stays_the_supervisors(start, backend):
    """Servers listen() again on the socket they are handed; with their own default (hypercorn:
    100) a burst of connections while workers are replaced would overflow it."""
    server = start("--noreload", "--skip-checks", "--backend", backend).wait_serving()
    listing = subprocess.run(
        ["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    # State, Recv-Q, Send-Q (for a listening socket: its backlog), ...
    assert listing[2] == str(BACKLOG), listing
