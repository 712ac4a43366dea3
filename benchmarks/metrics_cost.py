#!/usr/bin/env python
"""What ``--metrics`` costs: throughput and CPU time per request, per backend, with and without.

For each backend it serves a copy of the project with ``manage.py asgiserve --noreload --backend
B --workers N``, without and with ``--metrics``, interleaved round by round (without, with,
without, ...), and reports the median requests per second of each, their ratio, and the CPU
time the server's processes (supervisor, workers, gunicorn's workers) spent per request during
the measured load, from ``/proc`` (Linux). After each run with metrics it scrapes once and
checks that the requests were counted. DEBUG is off and the request log silenced, as in
production. Load: wrk if installed, else throughput.py's asyncio client (same machine: compare
ratios).

Then, in this process, the layer alone: CPU time per request of an ASGI application that
answers at once, with and without the metrics layer around it.

    python benchmarks/metrics_cost.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import _harness as h
import throughput as t

VARIANTS = ("without", "with --metrics")
PATH = "/sync/"


def counted(metrics_port: int) -> float:
    """``asgiserve_http_request_duration_seconds_count`` from one scrape."""
    url = f"http://{h.HOST}:{metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    match = re.search(r"^asgiserve_http_request_duration_seconds_count (\S+)$", text, re.M)
    return float(match.group(1)) if match else -1.0


def one_run(
    backend: str,
    variant: str,
    root: Path,
    env: dict[str, str],
    settings: t.Settings,
    log: Path,
) -> tuple[float, float] | str:
    """Requests per second and CPU microseconds per request of one server, or why not."""
    port, metrics_port = h.free_port(), h.free_port()
    cmd = [sys.executable, "manage.py", "asgiserve", "--noreload", "--backend", backend]
    cmd += ["--workers", str(settings.workers)]
    if variant != "without":
        cmd += ["--metrics", f"{h.HOST}:{metrics_port}"]
    server = h.Server(backend, [*h.SERVER_CPU, *cmd, f"{h.HOST}:{port}"], root, env, port, log)
    with h.running(server):
        if server.wait_ready(PATH, settings.start_timeout) is None or server.proc is None:
            return f"failed to start:\n{server.log_tail()}"
        t.load(port, PATH, settings.warmup, settings)
        server.remember_descendants()
        cpu_before = h.cpu_seconds(server.proc.pid)
        result = t.load(port, PATH, settings.duration, settings)
        cpu = h.cpu_seconds(server.proc.pid) - cpu_before
        if not result.requests:
            return f"no requests served: {result.detail}"
        if variant != "without" and counted(metrics_port) < result.requests:
            return "the metrics missed requests"
        return result.rps, cpu * 1e6 / result.requests


def layer_cost(calls: int) -> tuple[float, float]:
    """CPU microseconds per call of a bare ASGI application, and of it inside the layer."""
    from django_asgiserve.asgi.metrics import count_requests
    from django_asgiserve.process.metrics_board import Board

    async def app(scope: object, receive: object, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: object) -> None:
        pass

    board = Board.create()
    scope = {"type": "http", "path": "/", "method": "GET"}

    async def drive(application) -> float:
        started = time.process_time()
        for _ in range(calls):
            await application(scope, receive, send)
        return (time.process_time() - started) * 1e6 / calls

    bare = min(asyncio.run(drive(app)) for _ in range(3))
    counted_app = count_requests(app, board.fd)
    layered = min(asyncio.run(drive(counted_app)) for _ in range(3))
    return bare, layered


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="uvicorn,daphne,hypercorn,granian,gunicorn")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--pin", action="store_true", help="each server on CPU 1, wrk (one thread) on CPU 0"
    )
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--calls", type=int, default=100_000, help="for the layer alone")
    parser.add_argument(
        "--project", type=Path, default=Path(__file__).parent.parent / "testproject"
    )
    args = parser.parse_args()
    loadgen = "wrk" if shutil.which("wrk") else "python"
    if args.pin:
        h.pin()
    settings = t.Settings(
        paths=(PATH,),
        rounds=args.rounds,
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        threads=1 if args.pin else 2,
        workers=args.workers,
        loadgen=loadgen,
        start_timeout=60,
    )
    h.install_cleanup()
    rows = []
    with tempfile.TemporaryDirectory(prefix="asgiserve-metrics-") as tmp:
        scratch = Path(tmp)
        asgiserve_path = h.asgiserve_pythonpath(scratch)
        if asgiserve_path:
            sys.path.insert(0, asgiserve_path)
        env = h.base_env([asgiserve_path] if asgiserve_path else [])
        env.update(ASGISERVE_BENCH_DEBUG="0", ASGISERVE_BENCH_QUIET="1")
        root = h.copy_project(args.project.resolve(), scratch / "project")
        h.prepare_project(root, env)
        for backend in args.backends.split(","):
            rps: dict[str, list[float]] = {v: [] for v in VARIANTS}
            cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
            for rnd in range(args.rounds):
                for index, variant in enumerate(VARIANTS):
                    log = scratch / f"{backend}-{rnd}-{index}.log"
                    outcome = one_run(backend, variant, root, env, settings, log)
                    if isinstance(outcome, str):
                        print(f"{backend} {variant}: {outcome}", file=sys.stderr)
                        continue
                    rps[variant].append(outcome[0])
                    cpu[variant].append(outcome[1])
            medians = {v: statistics.median(rps[v] or [0]) for v in VARIANTS}
            cpus = {v: statistics.median(cpu[v] or [0]) for v in VARIANTS}
            base, metered = medians[VARIANTS[0]], medians[VARIANTS[1]]
            rows.append(
                [
                    backend,
                    f"{base:,.0f}",
                    f"{metered:,.0f}",
                    f"{metered / base:.3f}" if base else "-",
                    f"{cpus[VARIANTS[0]]:,.0f}",
                    f"{cpus[VARIANTS[1]]:,.0f}",
                    f"{cpus[VARIANTS[1]] - cpus[VARIANTS[0]]:+,.0f}",
                ]
            )
    print(
        f"`{PATH}`, --noreload --workers {args.workers}: requests/s and CPU µs per request "
        f"(all the server's processes), median of {args.rounds} rounds of {args.duration:g}s; "
        f"load: {loadgen}, {args.connections} connections; {h.machine_load()}\n"
    )
    headers = ["backend", "rps without", "rps with", "ratio", "CPU µs without", "CPU µs with"]
    print(h.markdown_table([*headers, "difference"], rows))
    bare, layered = layer_cost(args.calls)
    print(
        f"\nThe layer alone, in process ({args.calls:,} calls, best of 3): {bare:.2f} µs per "
        f"request without, {layered:.2f} µs with: {layered - bare:+.2f} µs."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
