"""The sync fast path (``ASGISERVE["SYNC_FAST_PATH"]``) on real servers, on and off.

With it on, a sync view, its ``request_started`` and its ``request_finished`` run in one thread
leased from the worker's request threads (``asgiserve-request-*``); with it off, Django's handler
serves as before. What users see must be the same either way: streaming, server-sent events,
large bodies, the debug 500 page, ``ATOMIC_REQUESTS``, ``SynchronousOnlyOperation`` from an
async view.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import httpx
import pytest

from tests.helpers import fastpath_project
from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.server import EventStream, child_environ

POOL_THREAD = "asgiserve-request"


def check_requests(server, fast: bool) -> None:
    served = server.get("/fp/thread/?tag=a")
    view_thread = served.text
    assert view_thread.startswith(POOL_THREAD) is fast, view_thread

    def from_same_worker() -> dict[str, str] | None:
        # With --workers 2 the next connection may reach the other worker.
        report = server.get("/fp/threads/?tag=a").json()
        return report if report["pid"] == served.headers["X-Pid"] else None

    threads = wait_for(from_same_worker, what="a report from the worker that served")
    assert isinstance(threads, dict)
    assert threads["view"] == threads["finished"] == view_thread
    if fast:
        # As under WSGI, request_started (and its close_old_connections) runs in the request's
        # thread too; Django's ASGI handler runs it in another thread.
        assert threads["started"] == view_thread

    async_thread = server.get("/fp/async-thread/").text
    assert not async_thread.startswith(POOL_THREAD)  # async views stay on the event loop

    expected = "".join(f"line {n}\n" for n in range(200))
    assert server.get("/fp/stream-sync/").text == expected
    assert server.get("/fp/stream-async/").text == expected

    events = EventStream(server.url + "/fp/sse/")
    wait_for(lambda: events.count("data: tick") >= 3, what="three events")
    assert events.status == 200

    body = os.urandom(5 * 1024 * 1024)  # more than FILE_UPLOAD_MAX_MEMORY_SIZE: spooled to disk
    posted = httpx.post(server.url + "/fp/upload/", content=body, timeout=DEADLINE).json()
    assert posted == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}

    error = server.get("/fp/boom/")
    assert error.status_code == 500
    assert "ValueError" in error.text and "fastpath boom" in error.text  # the technical page

    orm = server.get("/fp/orm/").json()
    assert orm["in_atomic_block"] is True
    assert orm["thread"].startswith(POOL_THREAD) is fast

    assert server.get("/fp/async-orm/").text == "SynchronousOnlyOperation"
    assert server.get("/sync/").text == "hello from testproject"


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "django"])
def test_requests_without_reloader(project, start, backend, fast):
    fastpath_project.install(project, fast=fast)
    server = start("--noreload", "--backend", backend).wait_serving()
    check_requests(server, fast)


@pytest.mark.parametrize("workers", [1, 2])
def test_requests_with_reloader(project, start, backend, workers):
    fastpath_project.install(project, fast=True)
    server = start("--backend", backend, "--workers", str(workers)).wait_serving()
    check_requests(server, fast=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_clients_that_leave_cost_nothing_but_their_request(project, start, backend, workers):
    """A client gone before its sync view answers: the answer is dropped, the response still
    closed (``request_finished``); one gone from a stream: the stream stops. Nothing is
    reported as an error, and the worker goes on serving."""
    fastpath_project.install(project, fast=True)
    server = start("--noreload", "--backend", backend, "--workers", str(workers)).wait_serving()
    gates = fastpath_project.gates(project)
    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port), timeout=DEADLINE) as client:
        client.sendall(b"GET /fp/gated/?name=left HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        wait_for((gates / "left.started").exists, what="the gated view to start")
    (gates / "left.open").touch()
    wait_for((gates / "left.closed").exists, what="the abandoned response to be closed")

    with socket.create_connection((address.hostname, address.port), timeout=DEADLINE) as client:
        client.sendall(b"GET /fp/gated-sse/?name=sse HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = bytearray()
        wait_for(lambda: received.extend(client.recv(65536)) or b"tick 2" in received)
    wait_for((gates / "sse.closed").exists, what="the abandoned stream to be closed")

    assert server.get("/sync/").text == "hello from testproject"
    assert "Traceback" not in server.output, server.output


def test_a_fast_path_setting_that_is_not_a_bool_is_refused(project):
    (project / "testproject" / "settings_bad.py").write_text(
        'from .settings import *  # noqa: F403\n\nASGISERVE = {"SYNC_FAST_PATH": "yes"}\n'
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--settings", "testproject.settings_bad"],
        cwd=project,
        env=child_environ(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "(asgiserve.E008) ASGISERVE['SYNC_FAST_PATH'] must be True or False." in output
    assert "Traceback" not in output
