#!/usr/bin/env python
"""The sync fast path (``ASGISERVE["SYNC_FAST_PATH"]``) against WSGI, runserver and the CLIs.

One run, one worker each, DEBUG off, the demo project's 7 default middleware, ``wrk -t2 -c32``
for ``--seconds`` per cell (requests per second, and wrk's p50/p99 latency at that load) on:

* ``/b/sync/`` a sync view returning a constant; ``/b/async/`` the same, async;
* ``/b/orm/`` a sync view making 5 ORM queries (SQLite); ``/b/stream/`` 1 MB streamed (sync
  iterator of 64 KB chunks);

served by gunicorn's sync WSGI worker, Django's own ``runserver --noreload``, each backend's own
CLI on ``testproject.asgi:application``, ``asgiserve --noreload`` with the fast path off and
on, and ``asgiserve``'s ``runserver`` (reloader on). Run with the servers' venv::

    python benchmarks/sync_path.py --seconds 5
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import _harness as h

VIEWS = """
import asyncio

from django.http import HttpResponse, StreamingHttpResponse

from demo.models import Note


def sync(request):
    return HttpResponse("hello")


async def async_(request):
    return HttpResponse("hello")


def orm(request):
    return HttpResponse(str(sum(Note.objects.count() for _ in range(5))))


def stream(request):
    chunk = b"x" * 65536
    return StreamingHttpResponse(chunk for _ in range(16))
"""
URLS = """
from django.urls import path

from demo import bench_views as v

urlpatterns = [
    path("sync/", v.sync),
    path("async/", v.async_),
    path("orm/", v.orm),
    path("stream/", v.stream),
]
"""
SETTINGS = """
ASGISERVE["SYNC_FAST_PATH"] = os.environ.get("BENCH_FAST_PATH", "1") == "1"
ASGISERVE["RUNSERVER"] = os.environ.get("BENCH_RUNSERVER", "1") == "1"
ASGISERVE["LIFESPAN_SIGNALS"] = False
"""
PATHS = ("/b/sync/", "/b/async/", "/b/orm/", "/b/stream/")
CLIS = {
    "uvicorn": lambda port: [
        *h.console_script("uvicorn"),
        "testproject.asgi:application",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ],
    "daphne": lambda port: [
        *h.console_script("daphne"),
        "-p",
        str(port),
        "-v",
        "0",
        "testproject.asgi:application",
    ],
    "hypercorn": lambda port: [
        *h.console_script("hypercorn"),
        "testproject.asgi:application",
        "--bind",
        f"{h.HOST}:{port}",
        "--log-level",
        "warning",
    ],
    "granian": lambda port: [
        *h.console_script("granian"),
        "--interface",
        "asginl",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "testproject.asgi:application",
    ],
    "gunicorn": lambda port: [
        *h.console_script("gunicorn"),
        "-k",
        "uvicorn_worker.UvicornWorker",
        "-b",
        f"{h.HOST}:{port}",
        "--log-level",
        "warning",
        "testproject.asgi:application",
    ],
}


def make_project(scratch: Path) -> Path:
    root = scratch / "testproject"
    shutil.copytree(
        h.DEFAULT_PROJECT, root, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3")
    )
    (root / "demo" / "bench_views.py").write_text(VIEWS)
    (root / "demo" / "bench_urls.py").write_text(URLS)
    urls = root / "testproject" / "urls.py"
    urls.write_text(
        urls.read_text() + '\nurlpatterns.append(path("b/", include("demo.bench_urls")))\n'
    )
    settings = root / "testproject" / "settings.py"
    settings.write_text(settings.read_text() + SETTINGS)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=root, check=True, env=environ({})
    )
    return root


def environ(extra: dict[str, str]) -> dict[str, str]:
    env = {**os.environ, "ASGISERVE_DEMO_DEBUG": "0", "PYTHONUNBUFFERED": "1", **extra}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [".", os.environ.get("PYTHONPATH")]))
    return env


def wait_up(port: int, proc: subprocess.Popen[bytes], deadline: float = 60) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://{h.HOST}:{port}/b/sync/", timeout=2).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not answer")


def wrk(port: int, path: str, seconds: int) -> tuple[float, str, str]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c32",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            "10s",
            f"http://{h.HOST}:{port}{path}",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    return (
        float(rps.group(1)) if rps else 0.0,
        p50.group(1) if p50 else "?",
        p99.group(1) if p99 else "?",
    )


def measure(
    root: Path,
    label: str,
    cmd: list[str],
    port: int,
    env: dict[str, str],
    seconds: int,
    results: dict[str, dict[str, tuple[float, str, str]]],
) -> None:
    proc = subprocess.Popen(
        cmd,
        cwd=root,
        env=environ(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_up(port, proc)
        for path in PATHS:
            wrk(port, path, 1)  # warm-up
            results.setdefault(label, {})[path] = wrk(port, path, seconds)
            print(label, path, results[label][path], flush=True)
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--backends", default=",".join(CLIS))
    options = parser.parse_args()
    results: dict[str, dict[str, tuple[float, str, str]]] = {}
    print("load before:", h.machine_load(), flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        root = make_project(Path(scratch))
        manage = [sys.executable, "manage.py"]
        cells = [
            (
                "gunicorn sync WSGI",
                lambda p: [
                    *h.console_script("gunicorn"),
                    "-w",
                    "1",
                    "-b",
                    f"{h.HOST}:{p}",
                    "testproject.wsgi:application",
                ],
                {},
            ),
            (
                "Django runserver",
                lambda p: [*manage, "runserver", "--noreload", str(p)],
                {"BENCH_RUNSERVER": "0"},
            ),
            ("asgiserve runserver (reloader)", lambda p: [*manage, "runserver", str(p)], {}),
        ]
        for backend in options.backends.split(","):
            cells += [
                (f"{backend} CLI", CLIS[backend], {}),
                (
                    f"asgiserve {backend} off",
                    lambda p, b=backend: [
                        *manage,
                        "asgiserve",
                        "--noreload",
                        "--backend",
                        b,
                        f"{h.HOST}:{p}",
                    ],
                    {"BENCH_FAST_PATH": "0"},
                ),
                (
                    f"asgiserve {backend} on",
                    lambda p, b=backend: [
                        *manage,
                        "asgiserve",
                        "--noreload",
                        "--backend",
                        b,
                        f"{h.HOST}:{p}",
                    ],
                    {},
                ),
            ]
        for label, command, env in cells:
            port = h.free_port()
            measure(root, label, command(port), port, env, options.seconds, results)
    print("load after:", h.machine_load())
    header = "| server | " + " | ".join(f"{p} req/s (p50/p99)" for p in PATHS) + " |"
    print(header)
    print("|" + "---|" * (len(PATHS) + 1))
    for label, row in results.items():
        print(
            f"| {label} | "
            + " | ".join(f"{row[p][0]:.0f} ({row[p][1]}/{row[p][2]})" for p in PATHS)
            + " |"
        )
    wsgi = results.get("gunicorn sync WSGI", {}).get("/b/sync/", (0,))[0]
    print("\nratios: fast path on / gunicorn sync WSGI (sync view); on / CLI (async view)")
    for backend in options.backends.split(","):
        on = results.get(f"asgiserve {backend} on", {})
        cli = results.get(f"{backend} CLI", {})
        if on and cli and wsgi:
            print(
                f"{backend}: sync {on['/b/sync/'][0] / wsgi:.2f}x WSGI, "
                f"async {on['/b/async/'][0] / cli['/b/async/'][0]:.2f}x CLI, "
                f"sync {on['/b/sync/'][0] / cli['/b/sync/'][0]:.2f}x CLI"
            )


if __name__ == "__main__":
    main()
