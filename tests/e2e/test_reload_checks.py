"""After a reload the new worker runs the system checks and prints what they find, but only once
its first response is over: the request that follows an edit (a tab reloading) does not share the
interpreter with them. Every backend, one and two workers, the spawn model, and with both cores
kept busy."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers.edits import set_message
from tests.helpers.polling import wait_for
from tests.helpers.process_models import SPAWN
from tests.helpers.server import Server, wait_body
from tests.helpers.spinning import busy_cores
from tests.helpers.timed_checks_project import CheckRun, install, read


def check_after_first_response(server: Server, project: Path, times: Path, runners: int) -> None:
    """``runners``: the processes that run the checks (gunicorn's one arbiter for its workers)."""
    server.wait_serving("/timed/")
    wait_body(server, "/timed/", "first")
    warned = server.output.count("demo.W900")
    edited = time.monotonic()
    set_message(project / "demo" / "timed_views.py", "first", "second")
    wait_body(server, "/timed/", "second")

    def new_checks() -> list[CheckRun]:
        return [run for run in read(times)[1] if run.start > edited]

    wait_for(lambda: len(new_checks()) >= runners, what="the new workers' checks")
    wait_for(lambda: server.output.count("demo.W900") > warned, what="the checks' warning")
    views = sorted(read(times)[0], key=lambda run: run.start)
    before_their_checks = 0
    for check in new_checks():
        # The first request this process (or a worker it forked) answered.
        first = next((v for v in views if check.pid in (v.pid, v.parent)), None)
        if first is not None and first.start < check.start:
            assert first.end <= check.start, (first, check)
            before_their_checks += 1
    # Requests follow an edit at once: one came to a new worker before its checks began.
    assert before_their_checks, (new_checks(), views[-5:])


@pytest.mark.parametrize("workers", [1, 2])
def test_checks_after_a_reload_wait_for_the_first_response(start, project, backend, workers):
    times = install(project)
    server = start(
        "--backend", backend, "--workers", str(workers), env={"ASGISERVE_TEST_TIMES": str(times)}
    )
    check_after_first_response(server, project, times, 1 if backend == "gunicorn" else workers)


def test_checks_after_a_reload_with_both_cores_busy(start, project):
    times = install(project)
    with busy_cores():
        server = start("--backend", "uvicorn", env={"ASGISERVE_TEST_TIMES": str(times)})
        check_after_first_response(server, project, times, 1)


@pytest.mark.parametrize("workers", [1, 2])
def test_checks_after_a_reload_in_the_spawn_model(start, project, workers):
    times = install(project)
    server = start(*SPAWN, "--workers", str(workers), env={"ASGISERVE_TEST_TIMES": str(times)})
    check_after_first_response(server, project, times, workers)
