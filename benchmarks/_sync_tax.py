"""The sync tax matrix (``throughput.py --sync-tax``): the sync fast path against WSGI,
runserver and each backend's CLI, in one run.

One worker everywhere, DEBUG off, the demo project's 7 default middleware. Four views written
into a copy of the project:

* ``/b/sync/`` a sync view returning a constant; ``/b/async/`` the same, async;
* ``/b/orm/`` a sync view making 5 ORM queries (SQLite); ``/b/stream/`` 1 MB streamed (sync
  iterator of 64 KB chunks).

Servers: gunicorn's sync WSGI worker, Django's own ``runserver --noreload``, asgiserve's
``runserver`` (reloader on), each backend's **floor** (its own CLI serving ``bench_floor:app``,
a bare ASGI app answering ``hello`` to every path without Django: no server of that backend can
serve a Django view faster), each backend's own CLI on ``testproject.asgi:application``, and
``asgiserve --noreload`` with the fast path off and on. Like the CLIs (and gunicorn's WSGI
worker) the asgiserve cells run without a request log (``--no-access-log``); one extra cell,
``asgiserve uvicorn on + log``, keeps it, to show what it costs.

Each cell gets, per view:

* saturating load: ``wrk -t2 -c32`` for ``--duration`` seconds: requests per second, and the
  server's CPU time per request (utime + stime of the server's whole process tree, from
  ``/proc``, over the requests wrk completed), the figure that survives a busy machine best;
* a fixed offered load: ``wrk -t1 -c8`` paced by a Lua ``delay()`` (each connection waits a
  random 0..2x ``8 / --rate`` seconds before each request), so about ``--rate`` requests per
  second whatever the server: p50 and p99 latency. wrk is a closed loop: a request that stalls
  also delays that connection's next one, so the p99 is a lower bound (coordinated omission),
  and the achieved rate falls below ``--rate`` when the server cannot keep up (it is printed).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import _harness as h

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator

VIEWS = """
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
#: A bare ASGI app, written next to ``manage.py``: each backend's floor.
FLOOR_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
    })
    await send({"type": "http.response.body", "body": b"hello"})
"""
#: Connections of the fixed-load run; each paces itself to rate / PACED_CONNECTIONS.
PACED_CONNECTIONS = 8
PACE_SCRIPT = """
local mean_ms = {mean_ms}
function delay()
  return math.random(0, 2 * mean_ms)
end
"""
CLIS: dict[str, Callable[[int], list[str]]] = {
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


@dataclass(frozen=True)
class Cell:
    """One server of the matrix."""

    label: str
    command: Callable[[int], list[str]]
    env: dict[str, str]


@dataclass(frozen=True)
class Figures:
    """One view on one server."""

    rps: float
    cpu_us: float  # server CPU time per request at saturation
    p50: str
    p99: str
    paced_rps: float
    paced_p50: str
    paced_p99: str


def make_project(scratch: Path) -> Path:
    root = scratch / "testproject"
    shutil.copytree(
        h.DEFAULT_PROJECT, root, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3")
    )
    (root / "bench_floor.py").write_text(FLOOR_APP)
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


def wait_up(
    port: int, proc: subprocess.Popen[bytes], path: str = "/b/sync/", deadline: float = 60
) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://{h.HOST}:{port}{path}", timeout=2).read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not answer")


@contextlib.contextmanager
def serving(root: Path, cell: Cell, path: str = "/b/sync/") -> Iterator[tuple[int, int]]:
    """Run ``cell``'s server on ``root`` until the block ends; yields its port and pid once
    ``path`` answers."""
    port = h.free_port()
    proc = subprocess.Popen(
        [*h.SERVER_CPU, *cell.command(port)],
        cwd=root,
        env=environ(cell.env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_up(port, proc, path)
        yield port, proc.pid
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def wrk(
    port: int, path: str, seconds: float, *, threads: int, connections: int, script: Path | None
) -> tuple[float, int, str, str]:
    """requests per second, requests done, p50, p99."""
    cmd = [*h.LOAD_CPU, "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    cmd += ["--latency", "--timeout", "10s"]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run(
        [*cmd, f"http://{h.HOST}:{port}{path}"], capture_output=True, text=True, check=False
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    done = re.search(r"(\d+) requests in", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        print(f"  non-2xx responses on {path}", file=sys.stderr)
    return (
        float(rps.group(1)) if rps else 0.0,
        int(done.group(1)) if done else 0,
        p50.group(1) if p50 else "?",
        p99.group(1) if p99 else "?",
    )


def measure(root: Path, cell: Cell, options: argparse.Namespace, pace: Path) -> dict[str, Figures]:
    figures: dict[str, Figures] = {}
    with serving(root, cell) as (port, pid):
        for path in options.paths:
            threads = 1 if h.LOAD_CPU else 2
            wrk(port, path, 1, threads=threads, connections=32, script=None)  # warm-up
            before, started = h.cpu_seconds(pid), time.monotonic()
            rps, done, p50, p99 = wrk(
                port, path, options.duration, threads=threads, connections=32, script=None
            )
            cpu = h.cpu_seconds(pid) - before
            cpu_us = cpu / max(done, 1) * 1e6
            busy = cpu / (time.monotonic() - started)
            paced = wrk(
                port,
                path,
                options.duration,
                threads=1,
                connections=PACED_CONNECTIONS,
                script=pace,
            )
            figures[path] = Figures(rps, cpu_us, p50, p99, paced[0], paced[2], paced[3])
            print(cell.label, path, figures[path], f"CPU {busy:.0%}", file=sys.stderr, flush=True)
    return figures


def cells_for(backends: list[str]) -> list[Cell]:
    manage = [sys.executable, "manage.py"]

    def asgiserve(backend: str, *flags: str) -> Callable[[int], list[str]]:
        command = [*manage, "asgiserve", "--noreload", "--backend", backend, *flags]
        return lambda p: [*command, f"{h.HOST}:{p}"]

    quiet = "--no-access-log"
    cells = [
        Cell(
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
        Cell(
            "Django runserver",
            lambda p: [*manage, "runserver", "--noreload", str(p)],
            {"BENCH_RUNSERVER": "0"},
        ),
        Cell("asgiserve runserver (reloader)", lambda p: [*manage, "runserver", str(p)], {}),
    ]
    for backend in backends:
        cells += [
            Cell(f"{backend} floor", floor(CLIS[backend]), {}),
            Cell(f"{backend} CLI", CLIS[backend], {}),
            Cell(f"asgiserve {backend} off", asgiserve(backend, quiet), {"BENCH_FAST_PATH": "0"}),
            Cell(f"asgiserve {backend} on", asgiserve(backend, quiet), {}),
        ]
    if "uvicorn" in backends:
        cells.append(Cell("asgiserve uvicorn on + log", asgiserve("uvicorn"), {}))
    return cells


def floor(cli: Callable[[int], list[str]]) -> Callable[[int], list[str]]:
    """The backend's CLI serving the bare ASGI app instead of Django's."""
    return lambda p: [
        "bench_floor:app" if arg == "testproject.asgi:application" else arg for arg in cli(p)
    ]


def run(options: argparse.Namespace) -> str:
    """Measure the matrix; return the report (tables and ratios)."""
    if not shutil.which("wrk"):
        raise SystemExit("--sync-tax needs wrk (apt-get install wrk)")
    if options.pin:
        h.pin()
    backends = list(options.backends)
    cells = cells_for(backends)
    if options.only:
        cells = [c for c in cells if re.search(options.only, c.label)]
    results: dict[str, dict[str, Figures]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = make_project(Path(scratch))
        pace = Path(scratch) / "pace.lua"
        mean_ms = round(PACED_CONNECTIONS * 1000 / options.rate)
        pace.write_text(PACE_SCRIPT.format(mean_ms=mean_ms))
        for cell in cells:
            results[cell.label] = measure(root, cell, options, pace)
    return report(results, backends, options.rate, options.paths)


def report(
    results: dict[str, dict[str, Figures]],
    backends: list[str],
    rate: float,
    paths: tuple[str, ...] = PATHS,
) -> str:
    lines = [
        f"Sync tax (one worker, DEBUG off, 7 middleware; {h.machine_load()})",
        "",
        "Saturating load (wrk -t2 -c32): req/s, server CPU us per request, p50/p99",
        "",
    ]
    headers = ["server", *paths]
    rows = [
        [
            label,
            *(
                f"{row[p].rps:.0f} req/s, {row[p].cpu_us:.0f} us, {row[p].p50}/{row[p].p99}"
                for p in paths
            ),
        ]
        for label, row in results.items()
    ]
    lines += [h.markdown_table(headers, rows), ""]
    lines += [f"Fixed offered load (~{rate:g} req/s, wrk -c{PACED_CONNECTIONS} paced): p50/p99", ""]
    rows = [
        [
            label,
            *(f"{row[p].paced_p50}/{row[p].paced_p99} ({row[p].paced_rps:.0f}/s)" for p in paths),
        ]
        for label, row in results.items()
    ]
    lines += [h.markdown_table(headers, rows), ""]
    wsgi = results.get("gunicorn sync WSGI", {}).get("/b/sync/")
    lines.append(
        "Ratios (same run): fast path on / gunicorn sync WSGI; the floor / gunicorn sync WSGI "
        "(the most any Django server on that backend could reach); on / the backend's CLI"
    )
    for backend in backends:
        on = results.get(f"asgiserve {backend} on")
        cli = results.get(f"{backend} CLI")
        bare = results.get(f"{backend} floor", {}).get("/b/sync/")
        if not on:
            continue
        parts = [f"{backend}:"]
        if wsgi and "/b/sync/" in on:
            parts.append(f"sync {on['/b/sync/'].rps / wsgi.rps:.2f}x WSGI")
            parts.append(f"(CPU/request {on['/b/sync/'].cpu_us / wsgi.cpu_us:.2f}x WSGI's)")
            if bare:
                parts.append(f"floor {bare.rps / wsgi.rps:.2f}x WSGI ({bare.cpu_us:.0f} us)")
            orm = results["gunicorn sync WSGI"].get("/b/orm/")
            if orm and "/b/orm/" in on:
                parts.append(f"orm {on['/b/orm/'].rps / orm.rps:.2f}x WSGI")
        if cli and "/b/async/" in on:
            parts.append(f"async {on['/b/async/'].rps / cli['/b/async/'].rps:.2f}x CLI")
        lines.append(" ".join(parts))
    return "\n".join(lines)
