#!/usr/bin/env python
"""Memory benchmark: how much a server grows while it receives one large upload.

For each backend, a copy of the project is served by ``manage.py asgiserve --noreload`` (DEBUG
off), beside daphne's own CLI on the same project. Each server receives a multipart upload of
64 MB and of 1 GB (``--sizes-mb``) to the project's ``/upload/`` view, which reads
``request.FILES["f"]`` and answers with its size and SHA-256 (checked here). The body is made
on the fly by the client, never held whole.

The figure is the peak resident memory of the serving process (found with the project's
``/pid/`` view) above its level just before the upload: the kernel's high-water mark
(``VmHWM``), reset with ``/proc/PID/clear_refs`` before each upload, so no peak is missed. A
server whose memory passes ``--cap-mb`` is stopped there (daphne's CLI holds 13-14 times the
upload), so the benchmark cannot exhaust the machine's memory.

Run it with the interpreter of the venv holding the servers::

    python benchmarks/upload_memory.py [--backends daphne,uvicorn] [--sizes-mb 64,1024]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import _harness as h

BACKENDS = ("uvicorn", "daphne", "hypercorn", "granian", "gunicorn")
BLOCK = 1024 * 1024
BOUNDARY = "asgiserve-bench-boundary"
HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="f"; filename="big.bin"\r\n'
    "Content-Type: application/octet-stream\r\n\r\n"
).encode()
TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()
SAMPLE_SECONDS = 0.02


class CapExceeded(Exception):
    pass


def blocks(size: int) -> Iterator[bytes]:
    for index in range(size // BLOCK):
        yield index.to_bytes(8, "big") * (BLOCK // 8)


@cache
def expected_sha256(size: int) -> str:
    digest = hashlib.sha256()
    for block in blocks(size):
        digest.update(block)
    return digest.hexdigest()


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


def multipart(size: int) -> Iterator[bytes]:
    yield HEAD
    yield from blocks(size)
    yield TAIL


def upload(port: int, size: int) -> dict[str, object]:
    connection = http.client.HTTPConnection(h.HOST, port, timeout=600)
    try:
        headers = {
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Length": str(len(HEAD) + size + len(TAIL)),
        }
        connection.request("POST", "/upload/", body=multipart(size), headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
        return json.loads(body)  # type: ignore[no-any-return]
    finally:
        connection.close()


def peak_growth(server: h.Server, size: int, cap_kib: int) -> float:
    """Peak RSS growth in MB of the serving process while it receives ``size`` bytes."""
    pid = int(h.get(server.port, "/pid/", timeout=10).body)
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
    baseline = status_kib(pid, "VmRSS")
    done = threading.Event()
    capped = threading.Event()

    def guard() -> None:
        while not done.is_set():
            if status_kib(pid, "VmRSS") - baseline > cap_kib:
                capped.set()
                server.stop()
                return
            time.sleep(SAMPLE_SECONDS)

    sampler = threading.Thread(target=guard, daemon=True)
    sampler.start()
    try:
        answer = upload(server.port, size)
    except (OSError, http.client.HTTPException):
        if capped.is_set():
            raise CapExceeded from None
        raise
    finally:
        done.set()
        sampler.join()
    if capped.is_set():
        raise CapExceeded
    peak = status_kib(pid, "VmHWM")
    if answer != {"size": size, "sha256": expected_sha256(size)}:
        raise RuntimeError(f"the upload arrived damaged: {answer}")
    return (peak - baseline) / 1024


def measure(name: str, cmd: list[str], root: Path, env: dict, args) -> list[str]:
    port = h.free_port()
    cmd = [part.replace("{port}", str(port)) for part in cmd]
    cells = [name]
    for size_mb in args.sizes:
        server = h.Server(name, cmd, root, env, port, root.parent / f"{name}-{size_mb}.log")
        with h.running(server):
            if server.wait_ready("/sync/", timeout=60) is None:
                cells.append("failed to start: " + server.log_tail(2).replace("\n", " "))
                continue
            try:
                cells.append(
                    f"{peak_growth(server, size_mb * 1024 * 1024, args.cap_mb * 1024):.1f} MB"
                )
            except CapExceeded:
                cells.append(f"> {args.cap_mb} MB (stopped)")
            except (OSError, RuntimeError, http.client.HTTPException) as error:
                cells.append(f"failed: {error}")
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=h.DEFAULT_PROJECT)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--sizes-mb", default="64,1024", help="upload sizes, comma-separated")
    parser.add_argument("--cap-mb", type=int, default=3072, help="stop a server growing past it")
    args = parser.parse_args(argv)
    args.sizes = [int(size) for size in args.sizes_mb.split(",")]
    h.install_cleanup()
    with tempfile.TemporaryDirectory(prefix="asgiserve-bench-") as scratch_name:
        scratch = Path(scratch_name)
        env = h.quiet_env(scratch)
        root = h.copy_project(args.project.resolve(), scratch / "project")
        info = h.prepare_project(root, env)
        rows = []
        backends = args.backends.split(",")
        if "daphne" in backends and h.module_available("daphne"):
            cli = [*h.console_script("daphne"), "-b", h.HOST, "-p", "{port}", "-v", "0"]
            cli.append(info.asgi_target)
            cli_env = {**env, "ASGISERVE_BENCH_VARIANT": "plain"}
            rows.append(measure("daphne CLI", cli, root, cli_env, args))
        for backend in backends:
            if not h.module_available(backend):
                continue
            cmd = [sys.executable, "manage.py", "asgiserve", "--noreload", "--skip-checks"]
            cmd += ["--backend", backend, f"{h.HOST}:{{port}}"]
            asgiserve_env = {**env, "ASGISERVE_BENCH_VARIANT": "asgiserve"}
            rows.append(measure(f"asgiserve-{backend}", cmd, root, asgiserve_env, args))
    print(
        f"Peak RSS growth of the serving process during one multipart upload ({h.machine_load()})\n"
    )
    headers = ["server", *(f"{size} MB upload" for size in args.sizes)]
    print(h.markdown_table(headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
