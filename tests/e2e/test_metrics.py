"""``--metrics``: the supervisor serves Prometheus text that sums every serving process (each of
gunicorn's workers too), whose counters never go down when workers are recycled, killed or
reloaded, on every backend, with one worker and two, with and without the reloader."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest
from websockets.sync.client import connect

from tests.helpers.commands import assert_fails_clearly, manage, write_settings
from tests.helpers.edits import ORIGINAL, set_message
from tests.helpers.metrics import Scrape, changes, metrics_url, scrape
from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.procfs import is_alive
from tests.helpers.server import Server, child_environ, port_is_free, wait_body

REQUESTS = "asgiserve_http_requests_total"
OK, MISSING, GONE = (f'{REQUESTS}{{status="{code}"}}' for code in (200, 404, 499))
COUNT = "asgiserve_http_request_duration_seconds_count"
BUCKET = "asgiserve_http_request_duration_seconds_bucket"
IN_FLIGHT = "asgiserve_http_requests_in_flight"
WS_OPEN = "asgiserve_websocket_connections_open"
WS_TOTAL = "asgiserve_websocket_connections_total"
EXITS = "asgiserve_worker_exits_total"


def serve(start, backend: str, workers: str, *args: str) -> tuple[Server, str]:
    server = start(
        "--skip-checks",
        "--backend",
        backend,
        "--workers",
        workers,
        "--metrics",
        "127.0.0.1:0",
        *args,
    ).wait_serving()
    return server, metrics_url(server)


def fetch(server: Server, path: str) -> httpx.Response:
    """``path`` on a fresh connection (the kernel spreads those over the workers' sockets)."""
    return httpx.get(server.url + path, timeout=DEADLINE, headers={"Connection": "close"})


def served_by_every_process(server: Server, processes: int) -> int:
    """Requests to ``/pid/`` until ``processes`` different processes answered; how many."""
    pids: set[str] = set()
    made = 0

    def every_one() -> bool:
        nonlocal made
        response = fetch(server, "/pid/")
        assert response.status_code == 200, server.output
        made += 1
        pids.add(response.text)
        return len(pids) == processes

    wait_for(every_one, what=f"{processes} processes to answer")
    return made


@pytest.mark.parametrize("workers", ["1", "2"])
def test_every_serving_process_is_counted(start, backend, workers):
    server, url = serve(start, backend, workers, "--noreload", "--health-path", "/healthz")
    serving = 1 if backend == "gunicorn" else int(workers)
    wait_for(lambda: scrape(url).value("asgiserve_workers") == serving, what="the workers")
    before = scrape(url)
    assert before.types[REQUESTS.removesuffix("_total")] == "counter"
    assert before.types["asgiserve_http_request_duration_seconds"] == "histogram"

    made = served_by_every_process(server, int(workers))
    for _ in range(7):
        assert fetch(server, "/nowhere/").status_code == 404
    for _ in range(5):  # balancers' probes are not requests
        assert fetch(server, "/healthz").status_code == 200
    after = changes(url, before, {OK: made, MISSING: 7})
    assert after.since(before, COUNT) == made + 7
    assert after.since(before, BUCKET, le="+Inf") == made + 7
    assert sum(after.by_label(REQUESTS, "status").values()) == after.value(COUNT)
    assert after.value(IN_FLIGHT) == 0

    # In flight while a request is open; a client that leaves first is a 499.
    with socket.create_connection(("127.0.0.1", server.port)) as client:
        client.sendall(b"GET /slow/?seconds=30 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        wait_for(lambda: scrape(url).value(IN_FLIGHT) == 1, what="a request in flight")
    changes(url, after, {GONE: 1, IN_FLIGHT: 0})

    with connect(f"ws://127.0.0.1:{server.port}/ws/echo/", open_timeout=10) as websocket:
        websocket.send("hello")
        assert websocket.recv(timeout=10) == "echo: hello"
        assert scrape(url).value(WS_OPEN) == 1
    changes(url, after, {WS_OPEN: 0, WS_TOTAL: 1})
    assert "Traceback" not in server.output, server.output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_counts_survive_recycling(start, backend, workers):
    server, url = serve(start, backend, workers, "--noreload", "--max-requests", "10")
    before = scrape(url)
    pids = {fetch(server, "/pid/").text for _ in range(60)}
    assert len(pids) >= 3, pids  # workers of 10 requests each were replaced
    wait_for(
        lambda: scrape(url).since(before, EXITS, reason="recycle") >= 2,
        what="recycled workers to exit",
    )
    after = changes(url, before, {OK: 60})  # theirs too
    assert after.since(before, COUNT) == 60
    assert "Traceback" not in server.output, server.output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_counts_survive_a_killed_worker_and_a_reload(start, backend, workers):
    server, url = serve(start, backend, workers, "--noreload")
    before = scrape(url)
    made = served_by_every_process(server, int(workers))

    # What a killed process counted stays on the board.
    killed = int(fetch(server, "/pid/").text)
    made += 1
    changes(url, before, {OK: made})
    os.kill(killed, signal.SIGKILL)
    wait_for(lambda: not is_alive(killed), what=f"process {killed} to be gone")
    if backend != "gunicorn":  # gunicorn's arbiter replaces its own workers, unseen
        changes(url, before, {f'{EXITS}{{reason="crash"}}': 1})
    assert scrape(url).since(before, REQUESTS, status="200") == made
    assert fetch(server, "/pid/").text != str(killed)  # the other worker, or a replacement
    made += 1

    os.kill(server.process.pid, signal.SIGHUP)
    wait_for(lambda: scrape(url).value("asgiserve_reloads_total") == 1, what="the reload")
    wait_for(
        lambda: scrape(url).since(before, EXITS, reason="reload") >= 1,
        what="the old workers to exit",
    )
    for _ in range(5):
        assert fetch(server, "/pid/").status_code == 200
    made += 5
    after = changes(url, before, {OK: made})
    assert after.since(before, COUNT) == made
    starts = after.value("asgiserve_worker_starts_total")
    exits = sum(after.by_label(EXITS, "reason").values())
    # Every worker started is serving, or has exited (or is still retiring).
    assert starts - exits >= after.value("asgiserve_workers") >= 1
    assert "Traceback" not in server.output, server.output


def test_counts_survive_a_code_reload(start, project, backend):
    server, url = serve(start, backend, "1")
    before = scrape(url)
    for _ in range(3):
        assert fetch(server, "/sync/").text == ORIGINAL
    set_message(project / "demo" / "views.py", ORIGINAL, "edited")
    wait_body(server, "/sync/", "edited")
    after = changes(url, before, {f'{EXITS}{{reason="reload"}}': 1, "asgiserve_reloads_total": 1})
    # The three requests, and every poll of wait_body that got an answer.
    assert after.since(before, REQUESTS, status="200") >= 4
    assert after.since(before, "asgiserve_worker_starts_total") == 1


def test_only_get_metrics_is_answered(start):
    server, url = serve(start, "uvicorn", "1", "--noreload")
    base = url.removesuffix("/metrics")
    assert httpx.get(base + "/", timeout=10).status_code == 404
    assert httpx.get(base + "/metricsx", timeout=10).status_code == 404
    assert httpx.post(url, timeout=10).status_code == 404
    head = httpx.head(url, timeout=10)
    assert (head.status_code, head.content) == (200, b"")
    text = httpx.get(url + "?x=1", timeout=10).text
    for name in ("asgiserve_http_requests_total", "asgiserve_workers", "asgiserve_reloads_total"):
        assert f"# HELP {name} " in text and f"# TYPE {name} " in text

    port = int(base.rpartition(":")[2])
    os.kill(server.process.pid, signal.SIGTERM)
    assert server.wait_exit() == 0, server.output
    assert port_is_free(port)


def test_bad_addresses_are_one_message(project):
    result = manage(project, "asgiserve", "--noreload", "--metrics", "nine")
    assert_fails_clearly(
        result,
        "argument --metrics: must be a port or an address and port, as [addr:]port ('' for "
        "none), not 'nine'.",
        code=2,
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = manage(project, "asgiserve", "--noreload", "--metrics", f"127.0.0.1:{port}")
    assert_fails_clearly(result, f"--metrics 127.0.0.1:{port}: That port is already in use.")


def test_the_setting_is_checked_and_used(start, project):
    bad = write_settings(project, "settings_metrics", 'ASGISERVE = {"METRICS": "nine"}')
    check = subprocess.run(
        [sys.executable, "manage.py", "check", "--settings", bad],
        cwd=project,
        env=child_environ(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert check.returncode == 1, check.stdout + check.stderr
    assert "(asgiserve.E016)" in check.stderr and "Traceback" not in check.stderr
    assert_fails_clearly(manage(project, "asgiserve", "--settings", bad), "(asgiserve.E016)")

    good = write_settings(project, "settings_metrics", 'ASGISERVE = {"METRICS": "127.0.0.1:0"}')
    server = start("--noreload", "--settings", good).wait_serving()
    assert isinstance(scrape(metrics_url(server)), Scrape)
