"""Real servers for the tests: ``manage.py asgiserve`` processes on loopback ports.

Each test that needs a server copies ``testproject`` into its own temporary directory (so it can
edit files freely), starts the command in a new session on port 0 and reads the real port from
the banner. Every wait polls a condition against a deadline; teardown stops the whole process
group and checks that nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
TESTPROJECT = REPO / "testproject"
BACKENDS = ("uvicorn", "daphne", "hypercorn", "granian", "gunicorn")
#: Generous: a 2-core CI machine running several servers at once can be slow.
DEADLINE = 30.0
BANNER_URL = re.compile(r"server at (https?)://(\S+?):(\d+)/")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reliability", "the reliability suite (tests/reliability)")
    group.addoption(
        "--soak",
        action="store_true",
        help="run the long version of the reliability suite (hundreds of reloads, every backend)",
    )
    group.addoption(
        "--reliability-report",
        metavar="PATH",
        help="write the reliability suite's figures to PATH as Markdown",
    )


def wait_for(condition: Callable[[], object], timeout: float = DEADLINE, what: str = "") -> object:
    """Poll ``condition`` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what or condition}")
        time.sleep(0.02)


class Output:
    """A child's output stream, collected by a thread so it can be searched while it runs."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            self.lines.append(raw.decode(errors="replace"))
        stream.close()

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def join(self, timeout: float = 5) -> None:
        self._thread.join(timeout)


def child_environ(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a ``manage.py`` child: unbuffered, uncoloured, its own settings."""
    environ = {**os.environ, "PYTHONUNBUFFERED": "1", "DJANGO_COLORS": "nocolor"}
    environ.pop("DJANGO_SETTINGS_MODULE", None)
    environ.update(env or {})
    return environ


class Server:
    """One ``manage.py <command>`` process and the ways tests observe it."""

    def __init__(
        self,
        project: Path,
        args: list[str],
        env: dict[str, str] | None = None,
        command: str = "asgiserve",
        launcher: tuple[str, ...] = (),
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.project = project
        self.process = subprocess.Popen(
            [sys.executable, *launcher, "manage.py", command, *args],
            pass_fds=pass_fds,
            cwd=project,
            env=child_environ(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.stdout = Output(self.process.stdout)
        self.stderr = Output(self.process.stderr)
        self.port: int | None = None
        self.scheme = "http"
        #: What ``get`` verifies HTTPS against (a test CA's context for a test certificate).
        self.verify: ssl.SSLContext | bool = True

    @property
    def output(self) -> str:
        return self.stdout.text + self.stderr.text

    def wait_serving(self, path: str = "/sync/") -> Server:
        """Wait for the banner and a first successful response."""

        def banner() -> re.Match[str] | None:
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.output}")
            return BANNER_URL.search(self.stdout.text)

        match = wait_for(banner, what="the banner")
        assert isinstance(match, re.Match)
        self.scheme, self.port = match.group(1), int(match.group(3))
        wait_for(lambda: self.try_get(path) is not None, what=f"a response from {path}")
        return self

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **{"verify": self.verify, **kwargs})

    def try_get(self, path: str) -> httpx.Response | None:
        try:
            return self.get(path)
        except httpx.HTTPError:
            return None

    def wait_output(self, needle: str, timeout: float = DEADLINE) -> None:
        wait_for(lambda: needle in self.output, timeout, what=f"{needle!r} in the output")

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"server did not exit within {timeout}s:\n{self.output}")
        self.stdout.join()
        self.stderr.join()
        return code

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the whole process group, as a terminal's Ctrl+C does."""
        os.killpg(self.process.pid, signum)

    def group_pids(self) -> list[int]:
        """Live processes in the server's session (the supervisor and all its descendants)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                fields = stat.rsplit(")", 1)[1].split()
                if fields[0] != "Z" and int(fields[3]) == self.process.pid:  # session id
                    pids.append(int(entry.name))
        return pids

    def kill(self) -> None:
        for pid in self.group_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)


class EventStream:
    """A streaming GET (an event stream) read line by line on a thread, until it ends."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        self.lines: list[str] = []
        self.status: int | None = None
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url, headers), daemon=True)
        self._thread.start()

    def _read(self, url: str, headers: dict[str, str] | None) -> None:
        try:
            with httpx.stream("GET", url, headers=headers, timeout=DEADLINE) as response:
                self.status = response.status_code
                for line in response.iter_lines():
                    self.lines.append(line)
        except httpx.HTTPError as error:
            self.error = error
        finally:
            self.ended.set()

    def count(self, needle: str) -> int:
        return sum(needle in line for line in self.lines)


def port_is_free(port: int) -> bool:
    """Whether nothing listens on ``port`` any more.

    ``SO_REUSEADDR`` as a server would use it: connections the server closed linger in
    TIME_WAIT for a minute, and a plain ``bind()`` fails on those although the port is free.
    """
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A private copy of ``testproject``."""
    target = tmp_path / "testproject"
    shutil.copytree(
        TESTPROJECT, target, ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3", "media")
    )
    return target


@pytest.fixture
def start(project: Path) -> Iterator[Callable[..., Server]]:
    """Start servers on ``project``; each is killed, with its whole session, at teardown."""
    servers: list[Server] = []

    def starter(
        *args: str,
        env: dict[str, str] | None = None,
        command: str = "asgiserve",
        addrport: str | None = "127.0.0.1:0",
        cwd: Path | None = None,
        launcher: tuple[str, ...] = (),
        pass_fds: tuple[int, ...] = (),
    ) -> Server:
        arguments = [*args] + ([addrport] if addrport else [])
        server = Server(cwd or project, arguments, env, command, launcher, pass_fds)
        servers.append(server)
        return server

    yield starter
    for server in servers:
        server.kill()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param
