#!/usr/bin/env python
"""Per-request CPU cost of the watchdog's and the request-cost layers, measured in-process.

Server throughput on a shared machine varies by more than the few microseconds these layers
add, so this times them directly: an ASGI app that does nothing, called N times on one asyncio
loop bare, behind ``watch_loops`` and behind the request-log layer with and without the cost
(the log itself silenced). The heartbeat (a ``call_later`` tick 40 times a second at
100 ms) is not per request. CPU time (``time.process_time``), best of
``--rounds``. Run from the repository with the venv's Python:

    python benchmarks/watchdog_micro.py
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django
from django.conf import settings

settings.configure(DEBUG=True)
django.setup()

from django_asgiserve.asgi import access_log  # noqa: E402
from django_asgiserve.insight import loop_watchdog, request_cost  # noqa: E402

SCOPE = {"type": "http", "method": "GET", "path": "/sync/", "query_string": b"", "headers": []}


async def empty_app(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def receive() -> dict:
    return {"type": "http.request"}


async def send(message: dict) -> None:
    return None


async def per_call(app, count: int) -> float:
    started = time.process_time()
    for _ in range(count):
        await app(dict(SCOPE), receive, send)
    return (time.process_time() - started) / count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("django.server").disabled = True
    request_cost.counting_queries = True
    apps = {
        "bare app": empty_app,
        "+ watchdog layer": loop_watchdog.watch_loops(empty_app, 100),
        "+ request log": access_log.log_requests(empty_app),
        "+ request log with cost": access_log.log_requests(empty_app, request_cost=True),
    }

    async def run() -> dict[str, float]:
        best = {name: float("inf") for name in apps}
        for _ in range(args.rounds):
            for name, app in apps.items():
                best[name] = min(best[name], await per_call(app, args.calls))
        return best

    best = asyncio.run(run())
    print(f"CPU time per call, best of {args.rounds} rounds of {args.calls:,} calls\n")
    print("| layer | µs per call | added |")
    print("|---|---|---|")
    for name, seconds in best.items():
        added = ""
        if name == "+ watchdog layer":
            added = f"{(seconds - best['bare app']) * 1e6:+.2f} µs"
        elif name == "+ request log with cost":
            added = f"{(seconds - best['+ request log']) * 1e6:+.2f} µs"
        print(f"| {name} | {seconds * 1e6:.2f} | {added} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
