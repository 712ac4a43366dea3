#!/usr/bin/env python
"""Throughput benchmark: a backend's own CLI vs ``manage.py asgiserve --noreload`` on it.

For each backend (uvicorn, daphne, hypercorn, granian, gunicorn) it serves a copy of the
project twice, on a free loopback port each time: (a) with the backend's own command line
(``uvicorn testproject.asgi:application`` ...; for gunicorn, ``gunicorn -k
uvicorn_worker.UvicornWorker``; access logs off where the CLI allows; same worker count) and (b)
with ``python manage.py asgiserve --noreload --backend B``. The two are interleaved (A, B, A,
B ... over ``--rounds``) and the median requests per second of each is reported. DEBUG is off
(``ASGISERVE_DEMO_DEBUG=0``, plus an overlay forcing it for other projects) so per-request log
lines do not dominate.

Modes:

* default: ``/sync/`` (``--async`` adds ``/async/``), one worker each;
* ``--workers N``: ``uvicorn --workers N``, ``hypercorn -w N``, ``granian --workers N``,
  ``gunicorn -k uvicorn_worker.UvicornWorker -w N`` vs ``asgiserve --backend B --workers N``
  (daphne has no workers: its CLI column is "n/a");
* ``--static``: a 10 MB file written to the copy's ``demo/static/demo/`` (or ``--app``'s static
  dir) is fetched instead; the CLIs serve the project wrapped in Django's
  ``ASGIStaticFilesHandler`` (with DEBUG off, as ``asgiserve --insecure`` does, when asgiserve
  has that flag; otherwise both run with DEBUG on).

Load generator: ``wrk`` when it is on PATH (``apt-get install wrk``), else a small keep-alive
HTTP/1.1 client written with asyncio streams (``--loadgen python``). The Python client runs in
one process on the same 2-core machine as the server, so it caps the numbers well below what
wrk reaches; compare ratios, not absolute values, between the two.

Run it with the interpreter of the venv holding the servers::

    python benchmarks/throughput.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import _harness as h
import _sync_tax

if TYPE_CHECKING:
    from collections.abc import Callable

STATIC_SIZE = 10 * 1024 * 1024
STATIC_NAME = "asgiserve-bench-10mb.bin"
STATIC_ASGI_MODULE = "asgiserve_bench_static_asgi"


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def uvicorn_cli(target: str, port: int, workers: int) -> list[str]:
    """``uvicorn`` with access logs off."""
    cmd = [*h.console_script("uvicorn"), target, "--host", h.HOST, "--port", str(port)]
    cmd += ["--no-access-log", "--log-level", "warning"]
    return cmd + (["--workers", str(workers)] if workers > 1 else [])


def daphne_cli(target: str, port: int, workers: int) -> list[str]:
    """``daphne`` at verbosity 0, which turns its access log off."""
    del workers  # daphne has no worker processes
    return [*h.console_script("daphne"), "-b", h.HOST, "-p", str(port), "-v", "0", target]


def hypercorn_cli(target: str, port: int, workers: int) -> list[str]:
    """``hypercorn`` (no access log unless asked for)."""
    cmd = [*h.console_script("hypercorn"), target, "--bind", f"{h.HOST}:{port}"]
    cmd += ["--log-level", "warning"]
    return cmd + (["-w", str(workers)] if workers > 1 else [])


def granian_cli(target: str, port: int, workers: int) -> list[str]:
    """``granian --interface asginl`` (no lifespan, as asgiserve; no access log by default)."""
    cmd = [*h.console_script("granian"), "--interface", "asginl", "--host", h.HOST]
    cmd += ["--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    return [*cmd, target]


def gunicorn_cli(target: str, port: int, workers: int) -> list[str]:
    """``gunicorn`` with uvicorn-worker's ``UvicornWorker`` (no access log by default)."""
    return [
        *h.console_script("gunicorn"),
        "-k",
        "uvicorn_worker.UvicornWorker",
        "-w",
        str(workers),
        "-b",
        f"{h.HOST}:{port}",
        "--log-level",
        "warning",
        target,
    ]


@dataclass(frozen=True)
class Pair:
    """One table row: a CLI command line against asgiserve on the same backend."""

    label: str
    backend: str
    cli: Callable[[str, int, int], list[str]] | None
    needs: tuple[str, ...]

    def available(self) -> bool:
        """Whether the backend (and the CLI's extra modules) are importable."""
        return all(h.module_available(m) for m in self.needs)


def pairs_for(backends: list[str], workers: int) -> list[Pair]:
    """The rows to measure, in order."""
    pairs: list[Pair] = []
    for backend in backends:
        if backend == "uvicorn":
            pairs.append(Pair("uvicorn", "uvicorn", uvicorn_cli, ("uvicorn",)))
        elif backend == "daphne":
            pairs.append(
                Pair("daphne", "daphne", daphne_cli if workers == 1 else None, ("daphne",))
            )
        elif backend == "hypercorn":
            pairs.append(Pair("hypercorn", "hypercorn", hypercorn_cli, ("hypercorn",)))
        elif backend == "granian":
            pairs.append(Pair("granian", "granian", granian_cli, ("granian",)))
        elif backend == "gunicorn":
            # The same arbiter and worker class on both sides: asgiserve --backend gunicorn runs
            # gunicorn's arbiter with uvicorn-worker's UvicornWorker.
            pairs.append(Pair("gunicorn", "gunicorn", gunicorn_cli, ("gunicorn", "uvicorn_worker")))
        else:
            raise SystemExit(
                f"unknown backend {backend!r}: choose among uvicorn, daphne, hypercorn, granian, "
                "gunicorn"
            )
    return pairs


def asgiserve_cmd(backend: str, port: int, workers: int, insecure: bool) -> list[str]:
    """``manage.py asgiserve --noreload`` on ``backend``."""
    cmd = [sys.executable, "manage.py", "asgiserve", "--noreload", "--backend", backend]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    if insecure:
        cmd.append("--insecure")
    return [*cmd, f"{h.HOST}:{port}"]


# --------------------------------------------------------------------------------------------
# Load generators
# --------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """Outcome of one load run."""

    rps: float
    requests: int
    errors: int
    detail: str = ""
    #: The server's CPU time (every process of it) per request served, in microseconds.
    cpu_us: float = 0.0


def run_wrk(port: int, path: str, duration: float, connections: int, threads: int) -> LoadResult:
    """Drive the server with wrk and parse its summary."""
    url = f"http://{h.HOST}:{port}{path}"
    cmd = [*h.LOAD_CPU, "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s"]
    cmd.append(url)
    cmd += ["--timeout", "10s"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=False)
    out = proc.stdout + proc.stderr
    rps_match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total_match = re.search(r"(\d+) requests in", out)
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx.group(1)) if non2xx else 0
    if rps_match is None:
        return LoadResult(0.0, 0, errors + 1, f"wrk failed: {out.strip()[-300:]}")
    requests = int(total_match.group(1)) if total_match else 0
    return LoadResult(float(rps_match.group(1)), requests, errors)


@dataclass
class _Counters:
    requests: int = 0
    errors: int = 0
    samples: list[str] = field(default_factory=list)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one HTTP/1.1 response; return its status and whether the connection stays open."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("connection closed before the status line")
    status = int(status_line.split(b" ", 2)[1])
    length: int | None = None
    chunked = False
    keep_alive = True
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        key = name.strip().lower()
        value = value.strip().lower()
        if key == b"content-length":
            length = int(value)
        elif key == b"transfer-encoding" and b"chunked" in value:
            chunked = True
        elif key == b"connection" and value == b"close":
            keep_alive = False
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await _drain(reader, length)
    else:  # no length: the body runs to the end of the connection
        while await reader.read(1 << 16):
            pass
        keep_alive = False
    return status, keep_alive


async def _drain(reader: asyncio.StreamReader, length: int) -> None:
    remaining = length
    while remaining:
        chunk = await reader.read(min(remaining, 1 << 20))
        if not chunk:
            raise ConnectionResetError("connection closed in the body")
        remaining -= len(chunk)


async def _client(port: int, request: bytes, stop_at: float, counters: _Counters) -> None:
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    while time.perf_counter() < stop_at:
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(h.HOST, port)
            writer.write(request)
            timeout = max(stop_at - time.perf_counter(), 0) + 10
            status, keep_alive = await asyncio.wait_for(_read_response(reader), timeout)
            if status == 200:
                counters.requests += 1
            else:
                counters.errors += 1
                if len(counters.samples) < 3:
                    counters.samples.append(f"HTTP {status}")
            if not keep_alive:
                writer.close()
                writer = reader = None
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            counters.errors += 1
            if len(counters.samples) < 3:
                counters.samples.append(f"{type(exc).__name__}: {exc}")
            if writer is not None:
                writer.close()
            writer = reader = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


def run_python_client(port: int, path: str, duration: float, connections: int) -> LoadResult:
    """Drive the server with ``connections`` keep-alive asyncio clients for ``duration`` s."""
    request = f"GET {path} HTTP/1.1\r\nHost: {h.HOST}:{port}\r\n\r\n".encode()
    counters = _Counters()

    async def main() -> float:
        start = time.perf_counter()
        stop_at = start + duration
        await asyncio.gather(
            *(_client(port, request, stop_at, counters) for _ in range(connections))
        )
        return time.perf_counter() - start

    elapsed = asyncio.run(main())
    return LoadResult(
        counters.requests / elapsed, counters.requests, counters.errors, "; ".join(counters.samples)
    )


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Tunables of a run."""

    paths: tuple[str, ...]
    rounds: int
    duration: float
    warmup: float
    connections: int
    threads: int
    workers: int
    loadgen: str
    start_timeout: float
    expect_size: int | None = None


@dataclass
class Samples:
    """Requests per second measured for one side of one row, round by round."""

    rps: list[float] = field(default_factory=list)
    errors: int = 0
    failed: str = ""

    def cell(self) -> str:
        """Median requests per second for the table."""
        if not self.rps:
            return self.failed or "-"
        text = f"{statistics.median(self.rps):,.0f}"
        if self.errors:
            text += f" ({self.errors} errors)"
        return text


def measure(
    name: str,
    cmd: list[str],
    root: Path,
    env: dict[str, str],
    port: int,
    log_path: Path,
    settings: Settings,
) -> dict[str, LoadResult] | str:
    """Start one server, load each path, stop it; the results per path or a failure message."""
    server = h.Server(name, [*h.SERVER_CPU, *cmd], root, env, port, log_path)
    with h.running(server):
        if server.wait_ready(settings.paths[0], settings.start_timeout) is None:
            _log(f"[{name}] failed to start: {' '.join(cmd)}\n{server.log_tail()}")
            return "failed to start"
        if settings.expect_size is not None:
            size = _body_size(port, settings.paths[0])
            if size != settings.expect_size:
                _log(f"[{name}] served {size} bytes instead of {settings.expect_size}")
                return "wrong response"
        results: dict[str, LoadResult] = {}
        for path in settings.paths:
            load(port, path, settings.warmup, settings)
            assert server.proc is not None
            cpu_before = h.cpu_seconds(server.proc.pid)
            results[path] = result = load(port, path, settings.duration, settings)
            if result.requests:
                cpu = h.cpu_seconds(server.proc.pid) - cpu_before
                result.cpu_us = cpu / result.requests * 1e6
            if not server.alive():
                _log(f"[{name}] died under load:\n{server.log_tail()}")
                return "died"
        logged = _request_log_lines(log_path)
        if logged > 100:
            _log(f"[{name}] note: the server logged {logged} request lines during the run")
        return results


def _body_size(port: int, path: str) -> int | None:
    """Length of the body of a 200 response to ``GET path`` (None for another status)."""
    conn = http.client.HTTPConnection(h.HOST, port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        size = 0
        while chunk := response.read(1 << 20):
            size += len(chunk)
        return size if response.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _request_log_lines(log_path: Path) -> int:
    """How many access-log-like lines (``"GET /path HTTP/1.1"``) a server wrote."""
    try:
        with log_path.open(errors="replace") as fh:
            return sum(1 for line in fh if '"GET /' in line)
    except OSError:
        return 0


def load(port: int, path: str, duration: float, settings: Settings) -> LoadResult:
    """One load run with the chosen generator."""
    if duration <= 0:
        return LoadResult(0.0, 0, 0)
    if settings.loadgen == "wrk":
        return run_wrk(port, path, duration, settings.connections, settings.threads)
    return run_python_client(port, path, duration, settings.connections)


def add_static_file(info: h.ProjectInfo, app: str | None) -> str:
    """Write the 10 MB static file and an ASGI module wrapping the project with static serving.

    Returns the URL path of the file.
    """
    app_dir = app or ("demo" if (info.root / "demo").is_dir() else None)
    if app_dir is None:
        local = [a.split(".")[0] for a in info.installed_apps]
        app_dir = next((a for a in local if (info.root / a).is_dir()), None)
    if app_dir is None:
        raise SystemExit("no app directory to put the static file in; pass --app")
    static_dir = info.root / app_dir / "static" / app_dir
    static_dir.mkdir(parents=True, exist_ok=True)
    block = bytes(range(256)) * 4096  # 1 MiB
    with (static_dir / STATIC_NAME).open("wb") as fh:
        for _ in range(STATIC_SIZE // len(block)):
            fh.write(block)
    module, _, attribute = info.asgi_target.partition(":")
    (info.root / f"{STATIC_ASGI_MODULE}.py").write_text(
        '"""The project\'s ASGI app behind Django\'s ASGIStaticFilesHandler (benchmarks)."""\n\n'
        "from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler\n\n"
        f"from {module} import {attribute} as _application\n\n"
        "application = ASGIStaticFilesHandler(_application)\n"
    )
    return f"/static/{app_dir}/{STATIC_NAME}"


def asgiserve_flags(root: Path, env: dict[str, str]) -> str:
    """``manage.py asgiserve --help`` output ("" when the command does not exist yet)."""
    proc = subprocess.run(
        [sys.executable, "manage.py", "asgiserve", "--help"],
        cwd=root,
        env={**env, "ASGISERVE_BENCH_VARIANT": "asgiserve"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.stdout if proc.returncode == 0 else ""


def run(args: argparse.Namespace, scratch: Path) -> str:
    """Prepare the project, measure every row, return the rendered table."""
    asgiserve_path = h.asgiserve_pythonpath(scratch)
    env = h.base_env([asgiserve_path] if asgiserve_path else [])
    root = h.copy_project(args.project.resolve(), scratch / "project")
    info = h.prepare_project(root, env)

    paths = ["/sync/", *(["/async/"] if args.async_ else [])]
    cli_target = info.asgi_target
    insecure = False
    debug = "0"
    help_text = asgiserve_flags(root, env)
    if args.static:
        paths = [add_static_file(info, args.app)]
        cli_target = f"{STATIC_ASGI_MODULE}:application"
        if "--insecure" in help_text:
            insecure = True
        else:
            debug = "1"
            _log("asgiserve has no --insecure (yet): both sides run with DEBUG on")
    if not help_text:
        _log("manage.py asgiserve is not available (yet): its column will say so")
    # Like for like: the CLIs run without access logs, so asgiserve runs without its request log.
    env.update(ASGISERVE_DEMO_DEBUG=debug, ASGISERVE_BENCH_DEBUG=debug, ASGISERVE_BENCH_QUIET="1")

    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    connections = args.connections or (4 if args.static else 32)
    settings = Settings(
        paths=tuple(paths),
        rounds=args.rounds,
        duration=args.duration,
        warmup=args.warmup,
        connections=connections,
        threads=args.threads,
        workers=args.workers,
        loadgen=loadgen,
        start_timeout=args.start_timeout,
        expect_size=STATIC_SIZE if args.static else None,
    )
    pairs = [p for p in pairs_for(args.backends, args.workers) if p.available()]
    cli_samples = {(p.label, path): Samples() for p in pairs for path in paths}
    srv_samples = {(p.label, path): Samples() for p in pairs for path in paths}
    cli_env = {**env, "ASGISERVE_BENCH_VARIANT": "plain"}
    srv_env = {**env, "ASGISERVE_BENCH_VARIANT": "asgiserve"}

    for rnd in range(1, settings.rounds + 1):
        for pair in pairs:
            for side in ("CLI", "asgiserve"):
                store = cli_samples if side == "CLI" else srv_samples
                skip = ""
                if side == "CLI" and pair.cli is None:
                    skip = "n/a (no workers)"
                elif side == "asgiserve" and not help_text:
                    skip = "not available"
                elif side == "asgiserve" and settings.workers > 1 and "--workers" not in help_text:
                    skip = "no --workers (yet)"
                if skip:
                    for path in paths:
                        store[(pair.label, path)].failed = skip
                    continue
                port = h.free_port()
                if side == "CLI" and pair.cli is not None:
                    cmd, side_env = pair.cli(cli_target, port, settings.workers), cli_env
                else:
                    cmd = asgiserve_cmd(pair.backend, port, settings.workers, insecure)
                    side_env = srv_env
                name = f"{pair.label} {side}"
                log_path = scratch / f"{_slug(name)}-round{rnd}.log"
                outcome = measure(name, cmd, root, side_env, port, log_path, settings)
                for path in paths:
                    samples = store[(pair.label, path)]
                    if isinstance(outcome, str):
                        samples.failed = outcome
                        continue
                    result = outcome[path]
                    samples.rps.append(result.rps)
                    samples.errors += result.errors
                    extra = f" [{result.detail}]" if result.detail else ""
                    _log(
                        f"round {rnd} {name} {path}: {result.rps:,.0f} rps, "
                        f"{result.errors} errors{extra}"
                    )

    rows: list[list[str]] = []
    for pair in pairs:
        for path in paths:
            cli = cli_samples[(pair.label, path)]
            srv = srv_samples[(pair.label, path)]
            label = pair.label if len(paths) == 1 else f"{pair.label} {path}"
            ratio = "-"
            if cli.rps and srv.rps:
                ratio = f"{statistics.median(srv.rps) / statistics.median(cli.rps):.2f}"
            rows.append([label, cli.cell(), srv.cell(), ratio])
    mode = "static 10 MB file" if args.static else ", ".join(paths)
    header = (
        f"Throughput ({mode}; workers={settings.workers}; load: {loadgen}, "
        f"{connections} connections, {settings.duration:g} s x {settings.rounds} rounds, "
        f"median; DEBUG={'on' if debug == '1' else 'off'}; ratio = asgiserve / CLI; "
        f"{h.machine_load()})\n"
    )
    table = h.markdown_table(["backend", "CLI rps", "asgiserve rps", "ratio"], rows)
    return header + "\n" + table


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Requests per second: each backend's own CLI vs manage.py asgiserve.",
    )
    parser.add_argument(
        "--project",
        type=Path,
        default=h.DEFAULT_PROJECT,
        help="Django project directory (holding manage.py) to copy; default: %(default)s",
    )
    parser.add_argument(
        "--backends",
        default="uvicorn,daphne,hypercorn,granian,gunicorn",
        help="comma-separated backends (default: %(default)s)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default: 3)")
    parser.add_argument(
        "--duration", type=float, default=5.0, help="seconds of load per measurement (5)"
    )
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of unmeasured load first (1)"
    )
    parser.add_argument(
        "--connections", type=int, help="concurrent connections (default: 32, static: 4)"
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default: 1)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    parser.add_argument("--async", dest="async_", action="store_true", help="also load /async/")
    parser.add_argument("--static", action="store_true", help="fetch a 10 MB static file")
    parser.add_argument(
        "--sync-tax",
        action="store_true",
        help="the sync fast path against WSGI, runserver and the CLIs (see _sync_tax.py)",
    )
    parser.add_argument(
        "--rate", type=float, default=400.0, help="--sync-tax: the fixed offered load (400/s)"
    )
    parser.add_argument("--only", help="--sync-tax: only the servers whose label matches this")
    parser.add_argument(
        "--paths",
        default=",".join(_sync_tax.PATHS),
        help="--sync-tax: the views to load, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="--sync-tax: each server on CPU 1, wrk (one thread) on CPU 0 (taskset)",
    )
    parser.add_argument("--app", help="app whose static dir gets the file (default: demo)")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator (default: wrk if installed, else the asyncio client)",
    )
    parser.add_argument(
        "--start-timeout", type=float, default=60.0, help="seconds allowed for startup (60)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (copy and logs)")
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.paths = tuple(p.strip() for p in args.paths.split(",") if p.strip())
    if unknown := set(args.paths) - set(_sync_tax.PATHS):
        parser.error(f"--paths: unknown {', '.join(sorted(unknown))}")
    if args.rounds < 1 or args.workers < 1 or args.duration <= 0:
        parser.error("--rounds and --workers must be at least 1, --duration positive")
    if args.loadgen == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install wrk), use --loadgen python")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    args = parse_args(argv)
    h.install_cleanup()
    if args.sync_tax:
        print(_sync_tax.run(args))
        return 0
    scratch = Path(tempfile.mkdtemp(prefix="asgiserve-throughput-bench-"))
    try:
        print(run(args, scratch))
    except KeyboardInterrupt:
        _log("interrupted: stopping servers")
        return 130
    finally:
        h.stop_all()
        if args.keep:
            _log(f"kept {scratch}")
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(scratch)
    return 0


if __name__ == "__main__":
    sys.exit(main())
