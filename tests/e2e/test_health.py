"""``--health-path`` and ``--drain-delay``: the health path answers 200 while serving and 503
from SIGTERM on, while normal requests are still served for the delay; then the server stops. A
worker started during the drain (a crashed one's replacement) drains too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.procfs import children, is_alive, parent_pid
from tests.helpers.server import child_environ

DRAIN = "5"
#: Long enough for a crashed worker's replacement to start and be asked, on a busy machine.
LONG_DRAIN = "8"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_health_turns_503_during_the_drain_delay(start, backend, workers):
    server = start(
        "--noreload",
        "--backend",
        backend,
        "--workers",
        workers,
        "--health-path",
        "/healthz",
        "--drain-delay",
        DRAIN,
        "--graceful-timeout",
        "1",
    ).wait_serving()
    health = server.get("/healthz")
    assert (health.status_code, health.text) == (200, "ok\n")
    # Answered before Django: the test project has no such URL.
    assert server.get("/nowhere-healthz").status_code == 404

    os.kill(server.process.pid, signal.SIGTERM)
    wait_for(
        lambda: server.get("/healthz", headers={"Connection": "close"}).status_code == 503,
        what="the health path answering 503",
    )
    response = server.get("/sync/")
    assert response.status_code == 200
    assert response.headers["connection"].lower() == "close"
    assert server.process.poll() is None
    assert server.wait_exit() == 0, server.output
    # The port refused new connections before the workers stopped accepting: no backend minded.
    assert "Traceback" not in server.output and "Exception" not in server.output, server.output


def asgiserve_worker(backend: str, pid: int) -> int:
    """The supervisor's worker behind serving process ``pid``: gunicorn's arbiter for one of
    gunicorn's workers, else the process itself."""
    return (parent_pid(pid) or 0) if backend == "gunicorn" else pid


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_worker_started_during_the_drain_drains_too(start, backend, workers):
    server = start(
        "--noreload",
        "--backend",
        backend,
        "--workers",
        workers,
        "--health-path",
        "/healthz",
        "--drain-delay",
        LONG_DRAIN,
        "--graceful-timeout",
        "1",
    ).wait_serving("/pid/")
    count = 1 if backend == "gunicorn" else int(workers)
    serving: set[int] = set()

    def every_worker_seen() -> bool:
        serving.add(asgiserve_worker(backend, int(server.get("/pid/").text)))
        return len(serving) == count

    wait_for(every_worker_seen, what=f"{count} workers answering")
    os.kill(server.process.pid, signal.SIGTERM)
    wait_for(lambda: server.get("/healthz").status_code == 503, what="the drain")
    killed = min(serving)
    orphans = [pid for pid, _state in children(killed)]  # gunicorn's workers
    os.kill(killed, signal.SIGKILL)
    server.wait_output(f"Worker {killed} exited unexpectedly")
    # gunicorn's workers leave when their arbiter has gone (resetting what they hold).
    wait_for(lambda: not any(map(is_alive, orphans)), what=f"the workers of {killed} to exit")

    def replacement_draining() -> bool:
        # A new connection each time (asking to keep it alive): whichever worker's socket.
        response = server.try_get("/pid/")
        if response is None or asgiserve_worker(backend, int(response.text)) in serving:
            return False
        # It is told to drain once it says it is ready, so its very first answers may come
        # before it has read that; then it ends each connection after the answer...
        return response.headers.get("connection", "").lower() == "close"

    wait_for(replacement_draining, what="the replacement answering, draining")
    # ... and its health path, as every other worker's, says 503 until the port refuses.
    statuses = []
    while server.process.poll() is None:  # refused, in the end: the drain delay is over
        if health := server.try_get("/healthz"):
            statuses.append(health.status_code)
    assert statuses and set(statuses) == {503}, statuses
    assert server.wait_exit() == 0, server.output
    assert "Traceback" not in server.output, server.output


def test_a_second_sigterm_stops_at_once(start):
    server = start("--noreload", "--health-path", "/healthz", "--drain-delay", "600").wait_serving()
    os.kill(server.process.pid, signal.SIGTERM)
    wait_for(lambda: server.get("/healthz").status_code == 503, what="draining")
    os.kill(server.process.pid, signal.SIGTERM)
    server.wait_exit()
    with pytest.raises(httpx.HTTPError):
        server.get("/healthz")


def test_health_path_is_off_by_default(start):
    server = start("--noreload").wait_serving()
    assert server.get("/healthz").status_code == 404


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--health-path", "healthz"],
            "argument --health-path: must be a path starting with '/' ('' for none), not "
            "'healthz'.",
        ),
        (
            ["--drain-delay", "soon"],
            "argument --drain-delay: must be a number of seconds (0: none), not 'soon'.",
        ),
    ],
)
def test_bad_options_are_one_message(start, args, message):
    server = start("--noreload", *args)
    assert server.wait_exit() != 0
    assert message in server.output
    assert "Traceback" not in server.output


def test_settings_keys_are_checked_and_used(start, project):
    (project / "testproject" / "settings_health.py").write_text(
        "from .settings import *  # noqa: F403\n\n"
        'ASGISERVE = {"HEALTH_PATH": "healthz", "DRAIN_DELAY": "soon"}\n'
    )
    check = subprocess.run(
        [sys.executable, "manage.py", "check", "--settings", "testproject.settings_health"],
        cwd=project,
        env=child_environ(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert check.returncode == 1, check.stdout + check.stderr
    assert "(asgiserve.E014)" in check.stderr and "(asgiserve.E015)" in check.stderr
    assert "Traceback" not in check.stderr

    (project / "testproject" / "settings_health.py").write_text(
        "from .settings import *  # noqa: F403\n\n"
        'ASGISERVE = {"HEALTH_PATH": "/up", "DRAIN_DELAY": 600}\n'
    )
    server = start("--noreload", "--settings", "testproject.settings_health").wait_serving()
    assert server.get("/up").status_code == 200
    os.kill(server.process.pid, signal.SIGTERM)
    wait_for(lambda: server.get("/up").status_code == 503, what="the drain from the settings")
    assert server.get("/sync/").status_code == 200
