#!/usr/bin/env python
"""What a feature costs in throughput, per backend, measured in pairs that share the machine's mood.

``watchdog_cost.py`` and ``metrics_cost.py`` start a fresh server for every round; on a small
shared machine (a VM with neighbours, a preloader booting meanwhile) rounds of identical code then
differ by 10-30 %, far more than the costs to be shown. Here, for each backend and feature, two
servers are started once, one without the feature and one with it, and warmed up; wrk then loads
them in turn, A B B A A B ..., ``--rounds`` times for ``--duration`` seconds each, so that whatever
the machine does meanwhile falls on both alike. Reported: the median of the per-pair ratios (with
its spread), for requests per second and for the server's CPU time per request.

Features (``--features``):

* ``watchdog``: ``--noreload --loop-warn-ms 0`` against ``--noreload --loop-warn-ms 100``;
* ``request-cost``: the reloader with ``LOOP_WARN_MS`` 0, ``REQUEST_COST`` off against on
  (DEBUG on, so queries are counted; the request log is built but not written);
* ``metrics``: ``--noreload`` against ``--noreload --metrics 127.0.0.1:PORT``;
* ``control``: ``--noreload`` against itself, the noise floor a cost must stand out of.

With ``--pin`` the servers share CPU 1 (only the one under load runs) and wrk runs on CPU 0.

    python benchmarks/paired_cost.py --pin --rounds 10
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import _harness as h
import throughput as t

PATH = "/sync/"
BACKENDS = "uvicorn,daphne,hypercorn,granian,gunicorn"

#: A server's flags ("{port}": a free port) and its ASGISERVE overlay.
Variant = tuple[list[str], dict[str, object]]
#: feature -> (without it, with it).
FEATURES: dict[str, tuple[Variant, Variant]] = {
    # The same server twice: the spread of the method itself on this machine, in this run.
    "control": ((["--noreload"], {}), (["--noreload"], {})),
    "watchdog": (
        (["--noreload", "--loop-warn-ms", "0"], {}),
        (["--noreload", "--loop-warn-ms", "100"], {}),
    ),
    "request-cost": (
        ([], {"LOOP_WARN_MS": 0, "REQUEST_COST": False}),
        ([], {"LOOP_WARN_MS": 0, "REQUEST_COST": True}),
    ),
    "metrics": ((["--noreload"], {}), (["--noreload", "--metrics", f"{h.HOST}:{{port}}"], {})),
}


def start(backend: str, variant: Variant, root: Path, env: dict[str, str], log: Path) -> h.Server:
    flags, overlay = variant
    flags = [f.format(port=h.free_port()) for f in flags]
    port = h.free_port()
    cmd = [sys.executable, "manage.py", "asgiserve", "--backend", backend, *flags]
    side_env = {
        **env,
        "ASGISERVE_BENCH_VARIANT": "asgiserve",
        "ASGISERVE_DEMO_INSIGHT": json.dumps(overlay),
    }
    server = h.Server(backend, [*h.SERVER_CPU, *cmd, f"{h.HOST}:{port}"], root, side_env, port, log)
    server.start()
    return server


def one_load(server: h.Server, settings: t.Settings) -> tuple[float, float]:
    """Requests per second and server CPU microseconds per request of one run."""
    assert server.proc is not None
    before = h.cpu_seconds(server.proc.pid)
    result = t.load(server.port, PATH, settings.duration, settings)
    cpu = h.cpu_seconds(server.proc.pid) - before
    if not result.requests or result.errors:
        raise RuntimeError(f"{server.name}: {result.requests} requests, {result.errors} errors")
    return result.rps, cpu * 1e6 / result.requests


def paired(
    backend: str,
    feature: str,
    root: Path,
    env: dict[str, str],
    scratch: Path,
    settings: t.Settings,
) -> list[tuple[float, float]]:
    """(rps ratio, CPU-per-request ratio) of each pair: with the feature over without."""
    without, with_ = FEATURES[feature]
    servers = [
        start(backend, variant, root, env, scratch / f"{backend}-{feature}-{side}.log")
        for side, variant in (("a", without), ("b", with_))
    ]
    try:
        for server in servers:
            if server.wait_ready(PATH, settings.start_timeout) is None:
                raise RuntimeError(f"{backend} {feature}: did not start\n{server.log_tail()}")
        for server in servers:  # past the preloader's boot and the first requests' imports
            t.load(server.port, PATH, max(settings.warmup, 2.0), settings)
        ratios = []
        for round_ in range(settings.rounds):
            # A B, then B A: whatever favours the first (or the second) of a pair cancels out.
            if round_ % 2:
                feat, base = (one_load(s, settings) for s in reversed(servers))
            else:
                base, feat = (one_load(s, settings) for s in servers)
            ratios.append((feat[0] / base[0], feat[1] / base[1]))
        return ratios
    finally:
        for server in servers:
            server.stop()


def spread(values: list[float], change: Callable[[float], str]) -> str:
    quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return f"{change(statistics.median(values))} ({change(quartiles[0])} .. {change(quartiles[2])})"


def pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f} %"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=BACKENDS)
    parser.add_argument("--features", default=",".join(f for f in FEATURES if f != "control"))
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pin", action="store_true", help="servers on CPU 1, wrk on CPU 0")
    parser.add_argument(
        "--project", type=Path, default=Path(__file__).parent.parent / "testproject"
    )
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("paired_cost.py needs wrk (apt-get install wrk)")
    if args.pin:
        h.pin()
    settings = t.Settings(
        paths=(PATH,),
        rounds=args.rounds,
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        threads=1 if args.pin else 2,
        workers=1,
        loadgen="wrk",
        start_timeout=60,
    )
    h.install_cleanup()
    rows = []
    with tempfile.TemporaryDirectory(prefix="asgiserve-paired-") as tmp:
        scratch = Path(tmp)
        env = h.base_env([p] if (p := h.asgiserve_pythonpath(scratch)) else [])
        env.update(ASGISERVE_BENCH_DEBUG="1", ASGISERVE_BENCH_QUIET="1")
        root = h.copy_project(args.project.resolve(), scratch / "project")
        h.prepare_project(root, env)
        for feature in args.features.split(","):
            for backend in args.backends.split(","):
                try:
                    ratios = paired(backend, feature, root, env, scratch, settings)
                except RuntimeError as error:
                    print(error, file=sys.stderr)
                    rows.append([feature, backend, "failed", "failed"])
                    continue
                rps, cpu = [r[0] for r in ratios], [r[1] for r in ratios]
                rows.append([feature, backend, spread(rps, pct), spread(cpu, pct)])
                print(feature, backend, rows[-1][2:], file=sys.stderr, flush=True)
    print(
        f"{PATH}, {args.rounds} pairs of {args.duration:g} s, wrk {args.connections} connections"
        f"{', pinned' if args.pin else ''}; {h.machine_load()}\n"
        "Change with the feature: median of the pairs (interquartile range). Requests/s: a cost"
        " is negative; CPU per request: a cost is positive.\n"
    )
    print(h.markdown_table(["feature", "backend", "requests/s", "CPU per request"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
