"""Real servers for the tests: ``manage.py <command>`` processes on loopback ports, the ways
tests reach them (plain requests, event streams, raw request targets) and a private copy of
``testproject`` for each to serve.

A server starts in a new session on port 0 and the real port is read from its banner; killing it
kills its whole session.
"""

from __future__ import annotations

import contextlib
import os
import re
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.procfs import describe, session_pids

REPO = Path(__file__).resolve().parents[2]
TESTPROJECT = REPO / "testproject"
BACKENDS = ("uvicorn", "daphne", "hypercorn", "granian", "gunicorn")
#: The backends the ``backend`` fixture runs each test on: every one, or those named in
#: ``ASGISERVE_TEST_BACKENDS`` (comma-separated): CI's newest pair runs two, the oldest all five.
TESTED_BACKENDS = (
    tuple(
        name
        for name in os.environ.get("ASGISERVE_TEST_BACKENDS", "").split(",")
        if name in BACKENDS
    )
    or BACKENDS
)
BANNER_URL = re.compile(r"server at (https?)://(\S+?):(\d+)/")
#: Text from project files that must never come back through STATIC_URL.
PROJECT_FILE_MARKERS = (
    "Django's command-line utility",  # manage.py
    "Settings for the django-asgiserve demo project",  # testproject/settings.py
    "DJANGO_SETTINGS_MODULE",
)


def copy_project(target: Path) -> Path:
    """A copy of ``testproject`` at ``target`` (without caches, database or uploads)."""
    shutil.copytree(
        TESTPROJECT, target, ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3", "media")
    )
    return target


class Output:
    """A child's output stream, collected by a thread so it can be searched while it runs.

    Each line is stamped (``time.monotonic``) when it is taken in. :meth:`catch_up` takes in at
    once whatever the child has written so far, from any thread: a test that calls it before
    stamping an event of its own (an answer from the server) knows that every line the child
    wrote before that event carries an earlier stamp.
    """

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.stamps: list[float] = []
        self._stream = stream
        self._fd = stream.fileno()
        os.set_blocking(self._fd, False)
        self._partial = b""
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._fd, selectors.EVENT_READ)
            while not self._closed:
                selector.select()
                self.catch_up()
        # Closed here, not in catch_up: closing it under a select() would leave that waiting.
        self._stream.close()

    def catch_up(self) -> None:
        """Take in every line the child has written so far (a last one unfinished waits)."""
        with self._lock:
            while not self._closed:
                try:
                    chunk = os.read(self._fd, 65536)
                except BlockingIOError:
                    return
                now = time.monotonic()
                if not chunk:  # end of file: the child closed it
                    self._take([self._partial] if self._partial else [], now)
                    self._closed = True
                    return
                *complete, self._partial = (self._partial + chunk).split(b"\n")
                self._take([line + b"\n" for line in complete], now)

    def _take(self, raw_lines: list[bytes], stamp: float) -> None:
        for raw in raw_lines:
            self.lines.append(raw.decode(errors="replace"))
            self.stamps.append(stamp)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def stamp_of(self, needle: str) -> float | None:
        """When the first line containing ``needle`` was taken in; ``None`` if none has been."""
        with self._lock:
            stamped = list(zip(self.lines, self.stamps, strict=True))
        return next((stamp for line, stamp in stamped if needle in line), None)

    def join(self, timeout: float = 5) -> None:
        self._thread.join(timeout)

    def abandon(self) -> None:
        """Stop reading and close this end, as a closed terminal or a pipe's reader that ended
        does: the child's next write to it fails (EPIPE). The reading thread, a daemon, may go
        on waiting on the closed descriptor."""
        with self._lock:
            self._closed = True
            self._stream.close()


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
        return session_pids(self.process.pid)

    def kill(self) -> None:
        kill_session(self.process)


def kill_session(process: subprocess.Popen) -> None:
    """SIGKILL ``process`` and every process of its session, and reap it."""
    for pid in session_pids(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if process.poll() is None:
        process.kill()
    process.wait(10)


class EventStream:
    """A streaming GET (an event stream) read line by line on a thread, until it ends; it
    knows its own client port (which connection, so which process, holds it)."""

    def __init__(
        self, url: str, headers: dict[str, str] | None = None, timeout: float = DEADLINE
    ) -> None:
        self.lines: list[str] = []
        self.status: int | None = None
        self.client_port: int | None = None
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._thread = threading.Thread(
            target=self._read, args=(url, headers, timeout), daemon=True
        )
        self._thread.start()

    def _read(self, url: str, headers: dict[str, str] | None, timeout: float) -> None:
        try:
            with httpx.stream("GET", url, headers=headers, timeout=timeout) as response:
                self.status = response.status_code
                stream = response.extensions["network_stream"]
                self.client_port = stream.get_extra_info("client_addr")[1]
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


# -- asking a server ----------------------------------------------------------------------------


def worker_pid(server: Server) -> int:
    """The pid of the process that answered ``/pid/``."""
    response = server.get("/pid/")
    assert response.status_code == 200, server.output
    return int(response.text)


def wait_workers_answering(server: Server, count: int) -> set[int]:
    """Poll ``/pid/`` on fresh connections until ``count`` different workers have answered (a
    server's banner and first answer can come before its last worker is forked: gunicorn's
    arbiter starts them one after the other)."""
    seen: set[int] = set()

    def enough() -> bool:
        if (response := server.try_get("/pid/")) is not None and response.status_code == 200:
            seen.add(int(response.text))
        return len(seen) >= count

    wait_for(enough, what=f"{count} workers answering")
    return seen


def body(server: Server, path: str) -> tuple[int, str] | None:
    """Status and text of ``path``, or ``None`` while nothing answers."""
    response = server.try_get(path)
    return None if response is None else (response.status_code, response.text)


def wait_body(server: Server, path: str, expected: str, status: int = 200) -> None:
    """Poll ``path`` until it answers ``status`` with ``expected`` (in the body)."""

    def matches() -> bool:
        answer = body(server, path)
        return answer is not None and answer[0] == status and expected in answer[1]

    try:
        wait_for(matches, what=f"{status} {expected!r} from {path}")
    except pytest.fail.Exception:
        print(f"last answer: {body(server, path)!r}\nserver output:\n{server.output}")
        raise


def get_target(server: Server, target: str, **kwargs) -> httpx.Response:
    """GET with ``target`` sent as is: httpx would otherwise resolve ``..`` segments."""
    with httpx.Client(timeout=10) as client:
        request = client.build_request(
            "GET", server.url + "/", extensions={"target": target.encode()}, **kwargs
        )
        return client.send(request)


def ipv6_loopback() -> bool:
    """Whether this machine can listen on ``::1``."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


# -- after it stops -----------------------------------------------------------------------------


def wait_for_nothing_left(server: Server, timeout: float = DEADLINE) -> None:
    """Wait until no process of the server's session lives and its port is free."""
    assert server.port is not None
    try:
        wait_for(lambda: not server.group_pids(), timeout, what="every process to end")
    except pytest.fail.Exception:
        survivors = "\n".join(describe(pid) for pid in server.group_pids())
        print(f"survivors:\n{survivors}\nserver output:\n{server.output}")
        raise
    wait_for(lambda: port_is_free(server.port), timeout, what=f"port {server.port} to be free")


def killed_worker_reported(backend: str, pid: int) -> str:
    """What the console says when serving process ``pid``, killed, is being replaced: the
    supervisor replaces asgiserve's workers, gunicorn's arbiter its own (and says so itself)."""
    if backend == "gunicorn":
        return f"Worker (pid:{pid}) was sent SIGKILL!"
    return f"Worker {pid} exited unexpectedly"
