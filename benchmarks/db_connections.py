#!/usr/bin/env python
"""Database connections under load: the three views of issue 19 against a real PostgreSQL.

A private PostgreSQL cluster (Debian's binaries, started as the tests start theirs:
``tests/helpers/postgres.py``) serves a copy of the project with the views of
``tests/helpers/db_project.py``: a sync view making a query, a sync streaming response whose
generator makes a query per chunk (3 chunks) and an async view making its query through
``sync_to_async``. Each view is loaded with ``wrk -c64`` for ``--duration`` seconds on two
databases: ``CONN_MAX_AGE = 0`` (Django's default) and ``CONN_MAX_AGE = 60`` (with health checks).

Servers, two workers each (``--workers 2``): gunicorn's sync WSGI worker, gunicorn's gthread
worker (8 threads, as many as asgiserve's places), ``asgiserve --noreload`` on each backend with
the sync fast path on, and on uvicorn with it off (Django's own ``ASGIHandler``). For each cell:
requests per second, and the connections to that database in ``pg_stat_activity`` during the load
(the most seen, sampled every 100 ms) and after it (one second after wrk ended). DEBUG is off
and no server writes a request log.

    python benchmarks/db_connections.py [--duration 5] [--pin] [--backends uvicorn,granian]

Besides the standard library it needs psycopg (Django's PostgreSQL driver), PostgreSQL
(``apt-get install postgresql``) and wrk.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import _harness as h
import _sync_tax

sys.path.insert(0, str(h.REPO_ROOT))
from tests.helpers import db_project
from tests.helpers.postgres import Cluster, cluster

VIEWS = ("sync", "stream", "async")
ALIASES = {"default": "CONN_MAX_AGE=0", "kept": "CONN_MAX_AGE=60"}
BACKENDS = ("uvicorn", "daphne", "hypercorn", "granian", "gunicorn")
SETTINGS = """
ASGISERVE["SYNC_FAST_PATH"] = os.environ.get("BENCH_FAST_PATH", "1") == "1"
ASGISERVE["LIFESPAN_SIGNALS"] = False
"""


Cell = _sync_tax.Cell


@dataclass(frozen=True)
class Figures:
    """One view on one database, on one server."""

    rps: float
    during: int  # the most connections seen during the load
    after: int  # connections one second after it


def cells_for(backends: list[str]) -> list[Cell]:
    gunicorn = h.console_script("gunicorn")
    manage = [sys.executable, "manage.py", "asgiserve", "--noreload", "--workers", "2"]

    def gthread(port: int) -> list[str]:
        wsgi = ["-b", f"{h.HOST}:{port}", "testproject.wsgi"]
        return [*gunicorn, "-w", "2", "-k", "gthread", "--threads", "8", *wsgi]

    def asgiserve(backend: str) -> Callable[[int], list[str]]:
        return lambda p: [*manage, "--backend", backend, "--no-access-log", f"{h.HOST}:{p}"]

    cells = [
        Cell(
            "gunicorn sync WSGI -w 2",
            lambda p: [*gunicorn, "-w", "2", "-b", f"{h.HOST}:{p}", "testproject.wsgi"],
            {},
        ),
        Cell("gunicorn gthread -w 2 --threads 8", gthread, {}),
        Cell("asgiserve uvicorn, Django's handler", asgiserve("uvicorn"), {"BENCH_FAST_PATH": "0"}),
    ]
    cells += [Cell(f"asgiserve {b}, fast path", asgiserve(b), {}) for b in backends]
    return cells


def make_project(scratch: Path, postgres: Cluster) -> tuple[Path, db_project.Databases]:
    root = h.copy_project(h.DEFAULT_PROJECT, scratch / "testproject")
    databases = db_project.install(root, postgres, "bench")
    settings = root / "testproject" / "settings.py"
    settings.write_text(settings.read_text() + SETTINGS)
    return root, databases


class Sampler:
    """The most connections to one database seen while it runs (every 100 ms)."""

    def __init__(self, databases: db_project.Databases, alias: str) -> None:
        self.count = lambda: len(databases.connections(alias))
        self.most = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.done.wait(0.1):
            try:
                self.most = max(self.most, self.count())
            except Exception as error:
                print(f"  pg_stat_activity: {error}", file=sys.stderr)

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.done.set()
        self.thread.join()


def measure(
    root: Path, databases: db_project.Databases, cell: Cell, seconds: float
) -> dict[tuple[str, str], Figures]:
    figures: dict[tuple[str, str], Figures] = {}
    threads = 1 if h.LOAD_CPU else 2
    with _sync_tax.serving(root, cell, "/db/sync/?alias=default") as (port, _pid):
        for alias in ALIASES:
            for view in VIEWS:
                path = f"/db/{view}/?alias={alias}"
                _sync_tax.wrk(port, path, 1, threads=threads, connections=64, script=None)
                with Sampler(databases, alias) as sampler:
                    rps, *_ = _sync_tax.wrk(
                        port, path, seconds, threads=threads, connections=64, script=None
                    )
                time.sleep(1)  # what is left once the requests are over
                figures[alias, view] = Figures(rps, sampler.most, len(databases.connections(alias)))
                print(cell.label, alias, view, figures[alias, view], file=sys.stderr, flush=True)
    return figures


def report(results: dict[str, dict[tuple[str, str], Figures]], pinned: bool) -> str:
    lines = [
        f"Database connections, --workers 2, wrk -c64 ({'pinned' if pinned else 'unpinned'}; "
        f"{h.machine_load()})",
        "",
    ]
    for alias, label in ALIASES.items():
        lines += [f"{label}: req/s (connections during load, max / one second after)", ""]
        headers = ["server", *VIEWS]
        rows = [
            [name, *(f"{r[alias, v].rps:.0f} ({r[alias, v].during} / {r[alias, v].after})"
                     for v in VIEWS)]
            for name, r in results.items()
        ]  # fmt: skip
        lines += [h.markdown_table(headers, rows), ""]
    wsgi = results.get("gunicorn sync WSGI -w 2")
    for alias, label in ALIASES.items() if wsgi else ():
        lines.append(f"Requests per second against gunicorn's sync WSGI worker ({label}):")
        for name, r in results.items():
            ratios = ", ".join(
                f"{v} {r[alias, v].rps / max(wsgi[alias, v].rps, 1):.2f}" for v in VIEWS
            )
            lines.append(f"- {name}: {ratios}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds of load per cell")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--pin", action="store_true", help="servers on CPU 1, wrk on CPU 0")
    options = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("db_connections.py needs wrk (apt-get install wrk)")
    if options.pin:
        h.pin()
    backends = [b for b in options.backends.split(",") if b]
    results: dict[str, dict[tuple[str, str], Figures]] = {}
    # Django's handler opens a connection per request (in a thread of its own): room for them.
    with cluster(max_connections=2000) as postgres, tempfile.TemporaryDirectory() as scratch:
        root, databases = make_project(Path(scratch), postgres)
        for cell in cells_for(backends):
            results[cell.label] = measure(root, databases, cell, options.duration)
    print(report(results, options.pin))


if __name__ == "__main__":
    main()
