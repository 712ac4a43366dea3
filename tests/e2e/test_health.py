"""``--health-path`` and ``--drain-delay``: the health path answers 200 while serving and 503
from SIGTERM on, while normal requests are still served for the delay; then the server stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.server import child_environ

DRAIN = "5"


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
        (["--health-path", "healthz"], "--health-path 'healthz': a path starts with '/'."),
        (["--drain-delay", "soon"], "'soon' is not a number of seconds"),
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
