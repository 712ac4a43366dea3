#!/usr/bin/env python
"""Memory benchmark: how much a server grows while it sends one large static file.

For each backend, a copy of the project gets a 200 MB file in ``demo/static/demo/`` and is
served by ``manage.py asgiserve --noreload --insecure`` (DEBUG off). The file is downloaded
twice: by a fast reader (as fast as loopback allows) and by a slow reader (``--slow-rate``,
2 s worth of reading at that rate, then the rest at full speed), which is where a server
without backpressure buffers the file. During each download the resident memory (VmRSS) of
the serving processes (the worker and anything it forked, e.g. gunicorn's workers) is sampled
every 5 ms; the table shows the peak growth over the value just before the request.

Only the serving process is measured (found with the project's ``/pid/`` view), so a
preloader booting beside it does not count. The anchor is Django's own
``ASGIStaticFilesHandler`` (what ``daphne``'s runserver and most hand-made setups use) served by
``uvicorn`` from its CLI: it reads the whole file into memory.

Run it with the interpreter of the venv holding the servers::

    python benchmarks/static_memory.py [--backends uvicorn,hypercorn] [--size-mb 200]
"""

from __future__ import annotations

import argparse
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import _harness as h

FILE_NAME = "asgiserve-bench-large.bin"
ANCHOR_MODULE = "asgiserve_bench_djangostatic_asgi"
BACKENDS = ("uvicorn", "daphne", "hypercorn", "granian", "gunicorn")
SAMPLE_SECONDS = 0.005


def rss_kib(pids: list[int]) -> int:
    """Summed VmRSS of ``pids`` (those still alive), in KiB."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def serving_pids(server: h.Server) -> list[int]:
    """The process that answers requests (``/pid/``) and anything it forked (gunicorn's
    workers); not the supervisor's other children, such as a preloader booting meanwhile."""
    worker = int(h.get(server.port, "/pid/", timeout=10).body)
    return [worker, *h.descendants(worker)]


def download(port: int, path: str, slow_rate: float | None) -> int:
    """GET ``path`` over a raw socket; returns the body bytes read. ``slow_rate`` (bytes/s)
    throttles the first two seconds of reading."""
    with socket.create_connection((h.HOST, port), timeout=60) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {h.HOST}\r\nConnection: close\r\n\r\n".encode())
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        received = 0
        started = time.perf_counter()
        while True:
            chunk = sock.recv(64 * 1024)
            if not chunk:
                break
            received += len(chunk)
            elapsed = time.perf_counter() - started
            if slow_rate and elapsed < 2.0:
                ahead = received / slow_rate - elapsed
                if ahead > 0:
                    time.sleep(ahead)
        return received


def peak_growth(server: h.Server, path: str, slow_rate: float | None) -> tuple[float, int]:
    """(peak RSS growth in MB during one download, bytes received)."""
    pids = serving_pids(server)
    baseline = rss_kib(pids)
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_kib(pids))
            time.sleep(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        received = download(server.port, path, slow_rate)
    finally:
        done.set()
        sampler.join()
    return (peak - baseline) / 1024, received


def write_file(root: Path, size: int) -> str:
    static_dir = root / "demo" / "static" / "demo"
    static_dir.mkdir(parents=True, exist_ok=True)
    block = bytes(range(256)) * 4096
    with (static_dir / FILE_NAME).open("wb") as fh:
        for _ in range(size // len(block)):
            fh.write(block)
    return f"/static/demo/{FILE_NAME}"


def write_anchor(info: h.ProjectInfo) -> str:
    module, _, attribute = info.asgi_target.partition(":")
    (info.root / f"{ANCHOR_MODULE}.py").write_text(
        "from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler\n\n"
        f"from {module} import {attribute} as _application\n\n"
        "application = ASGIStaticFilesHandler(_application)\n"
    )
    return f"{ANCHOR_MODULE}:application"


def measure(name: str, cmd: list[str], root: Path, env: dict, path: str, args) -> list[str]:
    port = h.free_port()
    cmd = [part.replace("{port}", str(port)) for part in cmd]
    server = h.Server(name, cmd, root, env, port, root.parent / f"{name}.log")
    with h.running(server):
        if server.wait_ready("/sync/", timeout=60) is None:
            return [name, "failed to start", "", server.log_tail(3).replace("\n", " ")]
        cells = [name]
        for rate in (None, args.slow_rate * 1024 * 1024):
            growth, received = peak_growth(server, path, rate)
            ok = "" if received >= args.size_mb * 1024 * 1024 else f" (short: {received} B)"
            cells.append(f"{growth:.1f} MB{ok}")
        cells.append("")
        return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=h.DEFAULT_PROJECT)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--slow-rate", type=float, default=5.0, help="MB/s of the slow reader")
    args = parser.parse_args(argv)
    h.install_cleanup()
    with tempfile.TemporaryDirectory(prefix="asgiserve-bench-") as scratch_name:
        scratch = Path(scratch_name)
        env = h.quiet_env(scratch)
        root = h.copy_project(args.project.resolve(), scratch / "project")
        info = h.prepare_project(root, env)
        path = write_file(root, args.size_mb * 1024 * 1024)
        anchor = write_anchor(info)
        rows = []
        if h.module_available("uvicorn"):
            cli = [*h.console_script("uvicorn"), anchor, "--host", h.HOST, "--port", "{port}"]
            cli += ["--no-access-log", "--log-level", "warning"]
            rows.append(measure("uvicorn CLI + ASGIStaticFilesHandler", cli, root, env, path, args))
        for backend in args.backends.split(","):
            if not h.module_available(backend):
                continue
            cmd = [sys.executable, "manage.py", "asgiserve", "--noreload", "--insecure"]
            cmd += ["--backend", backend, f"{h.HOST}:{{port}}"]
            asgiserve_env = {**env, "ASGISERVE_BENCH_VARIANT": "asgiserve"}
            rows.append(measure(f"asgiserve-{backend}", cmd, root, asgiserve_env, path, args))
    print(f"Peak RSS growth while sending a {args.size_mb} MB static file ({h.machine_load()})\n")
    headers = ["server", "fast reader", f"slow reader ({args.slow_rate:g} MB/s for 2 s)", "note"]
    print(h.markdown_table(headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
