"""Stopping: Ctrl+C and SIGTERM with a stream open, kill -9 of the supervisor, a killed worker.

Each test runs a real ``manage.py asgiserve`` in its own session, so "nothing survives" means no
live process is left in that session, and "the port is free" means nothing listens on it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time

import httpx
import pytest

from tests.helpers.edits import ORIGINAL, set_message
from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.procfs import parent_pid, socket_inodes, worker_connections
from tests.helpers.server import (
    EventStream,
    Server,
    killed_worker_reported,
    wait_body,
    wait_for_nothing_left,
)


def open_event_stream(server: Server) -> EventStream:
    """``/events/`` open, with its first event read: the request is in the worker's hands."""
    stream = EventStream(server.url + "/events/")
    wait_for(
        lambda: stream.ended.is_set() or any(line.startswith("data:") for line in stream.lines),
        what="the first event",
    )
    assert stream.status == 200 and not stream.ended.is_set(), (stream.error, server.output)
    return stream


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_stop_with_an_open_stream_exits_cleanly(start, backend, how, worker_model):
    server = start("--backend", backend, *worker_model).wait_serving()
    stream = open_event_stream(server)

    if how == "ctrl-c":
        server.signal_group(signal.SIGINT)  # what a terminal sends to the foreground group
    else:
        os.kill(server.process.pid, signal.SIGTERM)  # the supervisor alone
    code = server.wait_exit()
    assert code == 0, server.output
    wait_for_nothing_left(server)
    assert stream.ended.wait(DEADLINE), "the stream is still open"


def test_ctrl_c_with_an_open_stream_prints_no_traceback(start, backend):
    """Ending a stream when the grace period is over is the intended outcome, not an error:
    runserver's console stays quiet on Ctrl+C, whatever a browser tab had open."""
    server = start("--backend", backend).wait_serving()
    open_event_stream(server)

    server.signal_group(signal.SIGINT)
    assert server.wait_exit() == 0, server.output
    assert "Traceback" not in server.output, server.output


#: Where the serving processes are the asgiserve workers' children (gunicorn's) and where not.
PROCESS_MODELS = ("uvicorn", "gunicorn")


@pytest.mark.parametrize("backend", PROCESS_MODELS)
def test_kill_9_of_the_supervisor_leaves_nothing_behind(start, backend):
    server = start("--backend", backend).wait_serving()
    wait_for(lambda: len(server.group_pids()) >= 3, what="the preloader and a worker")

    server.process.kill()
    wait_for_nothing_left(server)


def unread_from(pid: int, sender: int) -> int:
    """Bytes that process ``sender`` sent process ``pid`` over Unix stream sockets and that
    ``pid`` has not read yet."""
    theirs = socket_inodes(sender)
    listing = subprocess.run(["ss", "-x", "-p"], capture_output=True, text=True, check=True)
    unread = 0
    for line in listing.stdout.splitlines():
        # u_str ESTAB <recv-q> <send-q> * <inode> * <peer inode> users:(("python",pid=N,fd=M))
        fields = line.split()
        if len(fields) >= 9 and fields[0] == "u_str" and f"pid={pid}," in fields[8]:
            unread += int(fields[2]) if fields[7] in theirs else 0
    return unread


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2) to see socket queues")
@pytest.mark.parametrize("backend", PROCESS_MODELS)
def test_kill_9_of_the_supervisor_with_unread_messages_leaves_nothing_behind(start, backend):
    """The supervisor dies with a worker's message unread (the kernel then resets the channel
    instead of closing it): the worker must still end."""
    server = start("--backend", backend).wait_serving()
    supervisor = server.process.pid
    worker = int(server.get("/pid/").text)
    if backend == "gunicorn":
        worker = parent_pid(worker)  # the asgiserve worker, running gunicorn's arbiter
        assert worker is not None
    os.kill(supervisor, signal.SIGSTOP)  # it stops reading; the worker goes on talking to it
    try:
        deadline = time.monotonic() + DEADLINE / 3
        while not unread_from(supervisor, worker):
            if time.monotonic() > deadline:
                pytest.skip("no worker sent anything while the supervisor was stopped")
            time.sleep(0.02)
    finally:
        server.process.kill()
    wait_for_nothing_left(server)


@pytest.mark.parametrize("backend", PROCESS_MODELS)
def test_kill_9_of_the_supervisor_ends_a_worker_mid_request(start, backend):
    server = start("--backend", backend).wait_serving()
    assert server.port is not None
    worker = int(server.get("/pid/").text)
    outcome: list[object] = []

    def slow_request() -> None:
        try:
            outcome.append(httpx.get(server.url + "/slow/?seconds=30", timeout=2 * DEADLINE))
        except httpx.HTTPError as error:
            outcome.append(error)

    before = worker_connections(worker, server.port)
    client = threading.Thread(target=slow_request, daemon=True)
    client.start()
    wait_for(
        lambda: worker_connections(worker, server.port) - before,
        what="the worker to take the request",
    )

    server.process.kill()
    # The request would take 30 seconds: a worker that waits for it rather than ending with its
    # supervisor is caught well before that.
    wait_for_nothing_left(server, timeout=DEADLINE / 2)
    client.join(DEADLINE)
    assert outcome and isinstance(outcome[0], httpx.HTTPError), outcome


@pytest.mark.parametrize("backend", PROCESS_MODELS)
def test_a_killed_worker_is_replaced(start, backend):
    server = start("--backend", backend).wait_serving()
    supervisor = server.process.pid
    worker = int(server.get("/pid/").text)

    os.kill(worker, signal.SIGKILL)

    def new_worker() -> int | None:
        response = server.try_get("/pid/")
        if response is None or response.status_code != 200 or int(response.text) == worker:
            return None
        return int(response.text)

    replacement = wait_for(new_worker, what="a new worker")
    assert replacement != supervisor
    assert server.get("/sync/").text == "hello from testproject"
    assert server.process.poll() is None and server.process.pid == supervisor
    server.wait_output(killed_worker_reported(backend, worker))


def test_a_killed_gunicorn_arbiter_is_replaced_with_its_workers(start):
    server = start("--backend", "gunicorn", "--workers", "2").wait_serving()
    workers = {int(server.get("/pid/").text) for _ in range(20)}
    arbiter = parent_pid(next(iter(workers)))
    assert arbiter != server.process.pid

    os.kill(arbiter, signal.SIGKILL)
    server.wait_output(f"Worker {arbiter} exited unexpectedly")

    def new_worker() -> int | None:
        response = server.try_get("/pid/")
        pid = int(response.text) if response is not None and response.status_code == 200 else 0
        return pid if pid and pid not in workers else None

    replacement = wait_for(new_worker, what="a worker of a new arbiter")
    assert isinstance(replacement, int) and parent_pid(replacement) not in (arbiter, None)
    # The old arbiter's workers do not outlive it.
    wait_for(lambda: not workers & set(server.group_pids()), what="the orphaned workers to end")
    assert server.get("/sync/").text == "hello from testproject"


def test_ctrl_c_right_after_start_prints_no_traceback(start):
    """Ctrl+C as soon as the site answers, while the preloader may still be starting."""
    server = start("--backend", "uvicorn").wait_serving()

    server.signal_group(signal.SIGINT)
    assert server.wait_exit() == 0, server.output
    wait_for_nothing_left(server)
    assert "Traceback" not in server.output, server.output
    assert "KeyboardInterrupt" not in server.output, server.output


def test_the_server_outlives_its_console(start, project, backend):
    """A terminal closed, or a pipe whose reader ended (``asgiserve | tee log``, tee killed):
    what the server says is lost, as runserver's log lines are then, and it serves on. It still
    reloads an edit (which it announces), and SIGTERM still ends it, leaving nothing behind."""
    server = start("--backend", backend).wait_serving()
    server.stdout.abandon()
    server.stderr.abandon()

    set_message(project / "demo" / "views.py", ORIGINAL, "said to no one")
    wait_body(server, "/sync/", "said to no one")
    os.kill(server.process.pid, signal.SIGTERM)
    server.wait_exit()
    wait_for_nothing_left(server)
