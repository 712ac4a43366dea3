"""A private ``redis-server`` on a free loopback port, without persistence, for one session."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator

#: Seconds redis-server gets to answer PING; generous for a busy CI machine.
START_DEADLINE = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """Run redis-server until the block ends; yields its ``redis://`` URL.

    Raises ``LookupError`` when redis-server is not installed.
    """
    executable = shutil.which("redis-server")
    if executable is None:
        raise LookupError("redis-server is not installed (Debian: apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="asgiserve-redis-") as workdir:
        # A port found free can be taken before redis binds it: try a few.
        for _attempt in range(5):
            port = free_port()
            process = subprocess.Popen(
                [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", workdir],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            deadline = time.monotonic() + START_DEADLINE
            while process.poll() is None and not answers_ping(port):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            if process.poll() is None and answers_ping(port):
                break
            process.kill()
            process.wait(10)
        else:
            raise RuntimeError("redis-server did not start on a free port")
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
