#!/usr/bin/env python
"""What one request to an async view costs in-process, through Django's ``ASGIHandler`` and
through ``SyncFastHandler`` (the merged async chain), with Django's 7 default middleware.

No server and no socket: the handler is called with an in-memory ``receive``/``send``, one
request at a time and ``--concurrency`` at once, for ``--requests`` requests per cell, in
interleaved rounds (the median is printed). A sync view on ``SyncFastHandler`` is the yardstick.
Run with the venv that holds Django::

    python benchmarks/async_chain.py --requests 2000 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import path

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]


async def async_view(request: Any) -> HttpResponse:
    return HttpResponse("hello")


def sync_view(request: Any) -> HttpResponse:
    return HttpResponse("hello")


urlpatterns = [path("async/", async_view), path("sync/", sync_view)]


def configure() -> None:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=MIDDLEWARE,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        USE_TZ=True,
    )
    django.setup()


def scope_for(url: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": url,
        "raw_path": url.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def one(handler: Any, url: str) -> None:
    sent = asyncio.Event()
    status = []

    async def receive() -> dict[str, Any]:
        if not status:
            status.append(0)
            return {"type": "http.request", "body": b""}
        await sent.wait()  # listen_for_disconnect: the client stays until the response is out
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status[0] = message["status"]
        elif not message.get("more_body"):
            sent.set()

    await handler(scope_for(url), receive, send)
    assert status[0] == 200, status


async def cell(handler: Any, url: str, requests: int, concurrency: int) -> float:
    """Microseconds per request."""
    for _ in range(20):  # warm up (URL resolution caches, the first thread)
        await one(handler, url)
    started = time.perf_counter()
    done = 0
    while done < requests:
        batch = min(concurrency, requests - done)
        await asyncio.gather(*(one(handler, url) for _ in range(batch)))
        done += batch
    return (time.perf_counter() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    configure()

    from django.core.handlers.asgi import ASGIHandler

    from django_asgiserve.asgi.handler import SyncFastHandler

    cells = {
        "async view, Django's ASGIHandler": (ASGIHandler(), "/async/"),
        "async view, SyncFastHandler (merged chain)": (SyncFastHandler(), "/async/"),
        "sync view, SyncFastHandler (fast path)": (SyncFastHandler(), "/sync/"),
    }
    figures: dict[tuple[str, int], list[float]] = {}
    for _ in range(options.rounds):
        for name, (handler, url) in cells.items():
            for concurrency in (1, options.concurrency):
                result = asyncio.run(cell(handler, url, options.requests, concurrency))
                figures.setdefault((name, concurrency), []).append(result)
    print(f"| handler | µs/request, 1 at a time | µs/request, {options.concurrency} at once |")
    print("|---|---|---|")
    for name in cells:
        one_at_a_time = statistics.median(figures[name, 1])
        at_once = statistics.median(figures[name, options.concurrency])
        print(f"| {name} | {one_at_a_time:.0f} | {at_once:.0f} |")


if __name__ == "__main__":
    main()
