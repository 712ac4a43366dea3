"""A ``manage.py asgiserve`` process in a pseudo-terminal: its standard input, output and error
are a terminal the test types into and reads, as a user's would be (``--pdb``'s prompt reads
there); and requests left waiting in the background while the test types."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.procfs import session_pids
from tests.helpers.server import BANNER_URL, child_environ, kill_session


class TerminalServer:
    """``manage.py asgiserve ARGS`` on a terminal of its own, in a session of its own."""

    def __init__(self, project: Path, args: list[str], env: dict[str, str] | None = None):
        self.master, slave = os.openpty()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "asgiserve", *args],
            cwd=project,
            env=child_environ(env),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
        )
        os.close(slave)
        self._chunks: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port: int | None = None

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: no process holds the terminal any more
                return
            if not data:
                return
            self._chunks.append(data.decode(errors="replace"))

    @property
    def output(self) -> str:
        """What the terminal showed (typed lines echoed), with its CRLF line ends as LF."""
        return "".join(self._chunks).replace("\r\n", "\n")

    def wait_output(self, pattern: str, after: int = 0) -> re.Match[str]:
        """The first match of the regular expression ``pattern`` at or after ``after``."""

        def found() -> re.Match[str] | None:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited:\n{self.output}")
            return re.compile(pattern).search(self.output, after)

        try:
            match = wait_for(found, what=f"{pattern!r} on the terminal")
        except BaseException:
            print(f"terminal:\n{self.output}")
            raise
        assert isinstance(match, re.Match)
        return match

    def type(self, line: str) -> None:
        os.write(self.master, f"{line}\n".encode())

    def wait_serving(self) -> TerminalServer:
        banner = self.wait_output(BANNER_URL.pattern)
        self.port = int(banner.group(3))
        wait_for(lambda: self.get("/sync/").status_code == 200, what="a response from /sync/")
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10)

    def signal_group(self, signum: int) -> None:
        """Send ``signum`` to the whole process group, as the terminal's Ctrl+C does."""
        os.killpg(self.process.pid, signum)

    def group_pids(self) -> list[int]:
        return session_pids(self.process.pid)

    def kill(self) -> None:
        kill_session(self.process)
        os.close(self.master)


class Pending:
    """A GET sent now, whose response the test collects later (the server may wait on the
    terminal before it answers)."""

    def __init__(self, url: str) -> None:
        self.response: httpx.Response | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        threading.Thread(target=self._get, args=(url,), daemon=True).start()

    def _get(self, url: str) -> None:
        try:
            self.response = httpx.get(url, timeout=DEADLINE * 4)
        except httpx.HTTPError as error:
            self.error = error
        finally:
            self.done.set()

    def result(self) -> httpx.Response:
        wait_for(self.done.is_set, what="the response")
        assert self.response is not None, self.error
        return self.response
