#!/usr/bin/env python
"""Template-edit latency with several serving processes: how long from writing a template until
every fresh request (whichever worker it reaches) shows the new version?

For each backend and ``--workers`` count it copies ``testproject``, adds a view answering with
its process id and the rendered ``demo/fragment.html``, starts ``manage.py asgiserve`` on a free
loopback port and waits until each of the ``--workers`` serving processes has answered (with
gunicorn: each of gunicorn's workers). Then, ``--edits`` times, it rewrites the template and
polls with a fresh connection per request until ``--streak`` answers in a row show the new
version and every serving process is among them. The latency is the time from the write to the
first answer of that streak; an edit that no streak shows within ``--timeout`` seconds is
"never" (some process kept the old template), and the rest of that configuration is skipped.

Run it with the interpreter of the venv holding the servers::

    python benchmarks/every_worker.py --backends uvicorn,gunicorn --workers 1,2
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _harness as h

BACKENDS = ("uvicorn", "daphne", "hypercorn", "granian", "gunicorn")
PROBE_PATH = "/asgiserve-bench/every/"
PROBE_URLS = """

import os as _bench_os

from django.http import HttpResponse as _BenchResponse
from django.template.loader import render_to_string as _bench_render


def _bench_every(request):
    page = _bench_render("demo/fragment.html").strip()
    return _BenchResponse(f"{_bench_os.getpid()} {page}", content_type="text/plain")


urlpatterns.append(path("asgiserve-bench/every/", _bench_every))
"""


def probe(port: int) -> tuple[int, str] | None:
    """(pid, template) from a fresh connection, or None."""
    answer = h.get(port, PROBE_PATH, timeout=5.0)
    if answer.outcome != "ok" or answer.status != 200:
        return None
    pid, _, page = answer.body.partition(" ")
    return int(pid), page


def measure(server: h.Server, template: Path, args: argparse.Namespace) -> list[float | None]:
    """Latencies of ``args.edits`` template edits (None: never shown everywhere)."""
    pids: set[int] = set()
    deadline = time.monotonic() + args.timeout * 4
    while len(pids) < args.count and time.monotonic() < deadline:
        answer = probe(server.port)
        if answer is not None:
            pids.add(answer[0])
    if len(pids) < args.count:
        raise SystemExit(f"only {len(pids)} serving processes answered\n{server.log_tail()}")
    latencies: list[float | None] = []
    for number in range(args.edits):
        time.sleep(args.pause + random.uniform(0, args.jitter))
        version = f"bench version {number} {random.random()}"
        written = time.perf_counter()
        template.write_text(version + "\n")
        streak, first, shown = 0, 0.0, set()
        latency = None
        while time.perf_counter() - written < args.timeout:
            answer = probe(server.port)
            answered = time.perf_counter()
            if answer is not None and answer[1] == version:
                if streak == 0:
                    first = answered
                streak += 1
                shown.add(answer[0])
                if streak >= args.streak and shown >= pids:
                    latency = first - written
                    break
            else:
                streak = 0
        latencies.append(latency)
        if latency is None:
            break
    return latencies


def summary(latencies: list[float | None]) -> list[str]:
    shown = [value * 1000 for value in latencies if value is not None]
    if not shown:
        return ["never", "-", f"{len(latencies)}"]
    cells = [f"{statistics.median(shown):.0f} ms", f"{min(shown):.0f}-{max(shown):.0f} ms"]
    return [*cells, str(len(latencies) - len(shown))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--streak", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--pause", type=float, default=0.3)
    parser.add_argument("--jitter", type=float, default=0.2)
    args = parser.parse_args()
    h.install_cleanup()
    rows = []
    with tempfile.TemporaryDirectory(prefix="asgiserve-every-") as scratch_name:
        scratch = Path(scratch_name)
        extra = h.asgiserve_pythonpath(scratch)
        env = h.base_env([extra] if extra else [])
        root = h.copy_project(h.DEFAULT_PROJECT, scratch / "project")
        info = h.prepare_project(root, env)
        urls = info.module_path(info.root_urlconf)
        urls.write_text(urls.read_text() + PROBE_URLS)
        template = root / "demo" / "templates" / "demo" / "fragment.html"
        for backend in args.backends.split(","):
            for workers in (int(w) for w in args.workers.split(",")):
                port = h.free_port()
                cmd = [sys.executable, "manage.py", "asgiserve", "--backend", backend]
                cmd += ["--workers", str(workers), f"{h.HOST}:{port}"]
                server = h.Server(
                    name=f"{backend}-{workers}",
                    cmd=cmd,
                    cwd=root,
                    env={**env, "ASGISERVE_BENCH_VARIANT": "asgiserve"},
                    port=port,
                    log_path=scratch / f"{backend}-{workers}.log",
                )
                args.count = workers
                with h.running(server):
                    if server.wait_ready(PROBE_PATH, timeout=60) is None:
                        raise SystemExit(f"{backend} did not start\n{server.log_tail()}")
                    latencies = measure(server, template, args)
                rows.append([backend, str(workers), *summary(latencies)])
                print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    headers = ["backend", "--workers", "median", "min-max", "never shown everywhere"]
    print(h.markdown_table(headers, rows))
    print(f"\n{args.edits} edits each, streak {args.streak}; {h.machine_load()}")


if __name__ == "__main__":
    main()
