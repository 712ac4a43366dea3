"""Which process of a server holds the other end of a test's TCP connection (Linux ``/proc``).

A connection to a server with several workers lands on one of them; tests that must reach
every worker (an event stream in each, say) find out where each connection went.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path

import httpx


def socket_inode(local_port: int, remote_port: int) -> str | None:
    """The inode of the loopback socket from ``local_port`` to ``remote_port``."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == local_port and (
                int(remote.rsplit(":", 1)[1], 16) == remote_port
            ):
                return inode
    return None


def holder(server_port: int, client_port: int, pids: Iterable[int]) -> int | None:
    """Which of ``pids`` holds the server's end of the connection from ``client_port``."""
    inode = socket_inode(server_port, client_port)
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


class TrackedEventStream:
    """A streaming GET read line by line on a thread, which knows its own client port."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        self.lines: list[str] = []
        self.client_port: int | None = None
        self.error: BaseException | None = None
        self.ended = threading.Event()
        self._thread = threading.Thread(
            target=self._read, args=(url, headers, timeout), daemon=True
        )
        self._thread.start()

    def _read(self, url: str, headers: dict[str, str], timeout: float) -> None:
        try:
            with httpx.stream("GET", url, headers=headers, timeout=timeout) as response:
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
