"""What the tests' live server costs: start-up, stop and request latency, per backend.

Runs in one process, as tests do: Django is set up with ``testproject``'s settings on its
in-memory SQLite test database; each server is started, asked ``--requests`` times for a page
(one at a time, on a new connection each), then stopped. Django's own ``LiveServerThread``
(WSGI) is measured the same way for comparison. Prints one Markdown table on stdout.

    python benchmarks/live_server.py --rounds 5 --requests 200
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGE = "/sync/"  # a plain sync view: the cost of the server and the handler


def request_latencies(host: str, port: int, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        connection = http.client.HTTPConnection(host, port, timeout=30)
        connection.request("GET", PAGE)
        response = connection.getresponse()
        response.read()
        connection.close()
        if response.status != 200:
            raise SystemExit(f"{PAGE} answered {response.status}")
        latencies.append(time.perf_counter() - started)
    return latencies


def asgi_server(backend: str) -> tuple[Callable[[], int], Callable[[], None]]:
    from django_asgiserve.live.server import ASGILiveServer

    server = ASGILiveServer(backend=backend)

    def start() -> int:
        server.start()
        return server.port

    return start, server.stop


def wsgi_server() -> tuple[Callable[[], int], Callable[[], None]]:
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    thread = LiveServerThread("127.0.0.1", StaticFilesHandler)
    thread.daemon = True

    def start() -> int:
        thread.start()
        thread.is_ready.wait()
        return thread.port

    return start, thread.terminate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="start/serve/stop cycles per server")
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--backends", default="uvicorn,hypercorn,granian")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO / "testproject"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "testproject.settings"
    import django
    from django.test.utils import setup_databases, setup_test_environment

    django.setup()
    setup_test_environment()
    setup_databases(verbosity=0, interactive=False)

    servers: dict[str, Callable[[], tuple[Callable[[], int], Callable[[], None]]]] = {
        "Django LiveServerThread (WSGI)": wsgi_server
    }
    for backend in args.backends.split(","):
        servers[f"asgiserve, {backend}"] = lambda backend=backend: asgi_server(backend)

    print("| server | start (ms) | stop (ms) | request median (ms) | request p95 (ms) |")
    print("|---|---|---|---|---|")
    for name, make in servers.items():
        starts, stops, latencies = [], [], []
        for _ in range(args.rounds):
            start, stop = make()
            began = time.perf_counter()
            port = start()
            starts.append(time.perf_counter() - began)
            latencies += request_latencies("127.0.0.1", port, args.requests)
            began = time.perf_counter()
            stop()
            stops.append(time.perf_counter() - began)
            print(f"{name}: round done", file=sys.stderr)
        p95 = statistics.quantiles(latencies, n=20)[-1]
        print(
            f"| {name} | {statistics.median(starts) * 1000:.0f} "
            f"| {statistics.median(stops) * 1000:.0f} "
            f"| {statistics.median(latencies) * 1000:.1f} | {p95 * 1000:.1f} |"
        )


if __name__ == "__main__":
    main()
