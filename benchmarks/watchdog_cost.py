#!/usr/bin/env python
"""What the event-loop watchdog and the request-cost extras cost in throughput, per backend.

For each backend it serves a copy of the project with ``manage.py asgiserve --backend B`` in
five variants, interleaved round by round (A, B, C, D, E, A, ...), and reports the median
requests per second of each:

* ``--noreload --loop-warn-ms 0`` (no watchdog) and ``--noreload --loop-warn-ms 100``;
* with the reloader: watchdog and extras off (``LOOP_WARN_MS`` 0, ``REQUEST_COST`` False),
  the extras alone, and both on (the reloader's defaults).

DEBUG is on (so queries are counted) and the request log is silenced
(``ASGISERVE_BENCH_QUIET=1``): the line is still built with its cost, but not written, so the
figures show the instrumentation, not terminal I/O. Paths: ``/sync/`` and ``/queries/?n=2``.
Load: wrk if installed, else throughput.py's asyncio client (same machine; compare ratios).
A second table gives the server's CPU time per request (all its processes, from /proc), which
stays steady when other work shares the machine and requests per second do not.

    python benchmarks/watchdog_cost.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import _harness as h
import throughput as t

VARIANTS: dict[str, tuple[list[str], dict[str, object]]] = {
    "noreload, no watchdog": (["--noreload", "--loop-warn-ms", "0"], {}),
    "noreload, watchdog": (["--noreload", "--loop-warn-ms", "100"], {}),
    "reload, both off": ([], {"LOOP_WARN_MS": 0, "REQUEST_COST": False}),
    "reload, cost only": ([], {"LOOP_WARN_MS": 0, "REQUEST_COST": True}),
    "reload, both on": ([], {"LOOP_WARN_MS": 100, "REQUEST_COST": True}),
}
PATHS = ("/sync/", "/queries/?n=2")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends",
        default="uvicorn,daphne,hypercorn,granian,gunicorn",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--pin", action="store_true", help="each server on CPU 1, wrk (one thread) on CPU 0"
    )
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--project", type=Path, default=Path(__file__).parent.parent / "testproject"
    )
    args = parser.parse_args()
    loadgen = "wrk" if shutil.which("wrk") else "python"
    if args.pin:
        h.pin()
    settings = t.Settings(
        paths=PATHS,
        rounds=args.rounds,
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        threads=1 if args.pin else 2,
        workers=1,
        loadgen=loadgen,
        start_timeout=60,
    )
    h.install_cleanup()
    with tempfile.TemporaryDirectory(prefix="asgiserve-watchdog-") as tmp:
        scratch = Path(tmp)
        asgiserve_path = h.asgiserve_pythonpath(scratch)
        env = h.base_env([asgiserve_path] if asgiserve_path else [])
        env.update(ASGISERVE_BENCH_DEBUG="1", ASGISERVE_BENCH_QUIET="1")
        root = h.copy_project(args.project.resolve(), scratch / "project")
        h.prepare_project(root, env)
        rows: list[list[str]] = []
        cpu_rows: list[list[str]] = []
        for backend in args.backends.split(","):
            samples = {(v, p): [] for v in VARIANTS for p in PATHS}
            cpu = {(v, p): [] for v in VARIANTS for p in PATHS}
            for rnd in range(args.rounds):
                for variant, (flags, serve) in VARIANTS.items():
                    cmd = [sys.executable, "manage.py", "asgiserve", "--backend", backend, *flags]
                    port = h.free_port()
                    side_env = {
                        **env,
                        "ASGISERVE_BENCH_VARIANT": "asgiserve",
                        "ASGISERVE_DEMO_INSIGHT": json.dumps(serve),
                    }
                    log = scratch / f"{backend}-{rnd}-{len(samples)}-{variant[:6]}.log"
                    outcome = t.measure(
                        backend, [*cmd, f"{h.HOST}:{port}"], root, side_env, port, log, settings
                    )
                    if isinstance(outcome, str):
                        print(f"{backend} {variant}: {outcome}", file=sys.stderr)
                        continue
                    for path, result in outcome.items():
                        samples[(variant, path)].append(result.rps)
                        cpu[(variant, path)].append(result.cpu_us)
            for path in PATHS:
                rows.append(row(backend, path, samples, "{:,.0f}"))
                cpu_rows.append(row(backend, path, cpu, "{:,.0f} us"))
        headers = ["backend", "path", *VARIANTS, "watchdog", "cost", "both"]
        print(
            f"Median of {args.rounds} rounds of {args.duration:g}s; load: {loadgen}, "
            f"{args.connections} connections; {h.machine_load()}\n"
        )
        print("Requests per second (a cost shows as a negative change):\n")
        print(h.markdown_table(headers, rows))
        print(
            "\nServer CPU time per request (every process of the server; a cost shows as a "
            "positive change; steadier than requests/s on a busy machine):\n"
        )
        print(h.markdown_table(headers, cpu_rows))
    return 0


def row(
    backend: str, path: str, samples: dict[tuple[str, str], list[float]], fmt: str
) -> list[str]:
    """One table row: each variant's median, then the changes against its baseline."""
    medians = {v: statistics.median(samples[(v, path)] or [0]) for v in VARIANTS}
    base_n, base_r = medians["noreload, no watchdog"], medians["reload, both off"]
    return [
        backend,
        path,
        *(fmt.format(medians[v]) for v in VARIANTS),
        pct(medians["noreload, watchdog"], base_n),
        pct(medians["reload, cost only"], base_r),
        pct(medians["reload, both on"], base_r),
    ]


def pct(value: float, base: float) -> str:
    return f"{(value / base - 1) * 100:+.1f} %" if base else "-"


if __name__ == "__main__":
    raise SystemExit(main())
