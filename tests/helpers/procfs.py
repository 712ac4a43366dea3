"""What tests read about processes and sockets from Linux ``/proc``: a process's state, parent,
children, session, memory and descriptors, and the TCP sockets the kernel lists.

Every reader answers for a process that is gone (``None``, ``False`` or empty) rather than
raising, since the processes observed come and go while a test looks.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

# -- processes ----------------------------------------------------------------------------------


def stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` after the command name (state, ppid, ...); ``None`` once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid``; ``None`` once it is gone."""
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether ``ancestor`` is ``pid`` or one of its ancestors."""
    while pid and pid != 1:
        if pid == ancestor:
            return True
        pid = parent_pid(pid) or 0
    return False


def _all_stats() -> Iterator[tuple[int, list[str]]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name))
            if fields:
                yield int(entry.name), fields


def children(pid: int) -> list[tuple[int, str]]:
    """Direct children of ``pid`` and their states (``Z`` for one not reaped yet)."""
    return [(child, fields[0]) for child, fields in _all_stats() if int(fields[1]) == pid]


def session_pids(session: int) -> list[int]:
    """Live processes (zombies excluded) in session ``session``."""
    return [pid for pid, fields in _all_stats() if fields[0] != "Z" and int(fields[3]) == session]


def describe(pid: int) -> str:
    """What a process is and where it waits, for failure messages."""
    proc = Path(f"/proc/{pid}")
    try:
        command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        wchan = (proc / "wchan").read_text()
        threads = len(list((proc / "task").iterdir()))
    except OSError as error:
        return f"{pid}: {error}"
    return f"{pid} state={stat[0]} ppid={stat[1]} threads={threads} wchan={wchan} {command[:120]}"


def status_kib(pid: int, field: str) -> int:
    """A figure in KiB from ``/proc/PID/status`` (``VmRSS``, ``VmHWM``, ...)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


# -- what a process holds -----------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """What one process holds: the figures that must not grow over a long run."""

    fds: int
    threads: int
    children: int
    zombies: int
    rss_kib: int
    #: Directories watched through inotify (0 where the watcher polls).
    watches: int

    FIELDS: ClassVar = ("fds", "threads", "children", "zombies", "rss_kib", "watches")

    def change(self, after: Usage) -> str:
        """``fds 12 -> 12, ...``: each figure before and after."""
        parts = []
        for name in self.FIELDS:
            before, now = getattr(self, name), getattr(after, name)
            if name == "rss_kib":
                parts.append(f"RSS {before / 1024:.1f} -> {now / 1024:.1f} MiB")
            else:
                parts.append(f"{name.replace('zombies', 'unreaped')} {before} -> {now}")
        return ", ".join(parts)


def usage(pid: int) -> Usage:
    proc = Path(f"/proc/{pid}")
    kids = children(pid)
    return Usage(
        fds=len(os.listdir(proc / "fd")),
        threads=len(os.listdir(proc / "task")),
        children=len(kids),
        zombies=sum(state == "Z" for _pid, state in kids),
        rss_kib=status_kib(pid, "VmRSS"),
        watches=inotify_watches(pid),
    )


def inotify_watches(pid: int) -> int:
    """How many inotify watches ``pid`` holds, from ``/proc/PID/fdinfo``."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                continue
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except OSError:
            continue
        count += sum(line.startswith("inotify wd:") for line in info.splitlines())
    return count


def socket_inodes(pid: int) -> set[str]:
    """Inodes of the sockets process ``pid`` has open."""
    inodes: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


# -- TCP sockets --------------------------------------------------------------------------------

ESTABLISHED = "01"
LISTEN = "0A"


@dataclass(frozen=True)
class TcpSocket:
    """One row of ``/proc/net/tcp`` or ``/proc/net/tcp6``."""

    local_address: str
    local_port: int
    remote_port: int
    state: str
    inode: str
    #: A listener's: connections in its backlog, waiting for an accept().
    rx_queue: int = 0


def tcp_sockets() -> Iterator[TcpSocket]:
    """Every TCP socket (IPv4 and IPv6) of this network namespace."""
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            rx_queue = int(fields[4].partition(":")[2], 16)
            address, _, hex_port = local.partition(":")
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, size, 4))
            yield TcpSocket(
                local_address=str(ipaddress.ip_address(words)),
                local_port=int(hex_port, 16),
                remote_port=int(remote.rsplit(":", 1)[1], 16),
                state=state,
                inode=inode,
                rx_queue=rx_queue,
            )


def established_sockets(port: int) -> set[str]:
    """Inodes of the established TCP connections whose local port is ``port``."""
    return {s.inode for s in tcp_sockets() if s.state == ESTABLISHED and s.local_port == port}


def listening_addresses(port: int) -> set[str]:
    """The local addresses of the sockets listening on TCP ``port``."""
    return {s.local_address for s in tcp_sockets() if s.state == LISTEN and s.local_port == port}


def listen_backlog(port: int) -> int:
    """Connections waiting to be accepted on TCP ``port``, over all its listening sockets."""
    return sum(s.rx_queue for s in tcp_sockets() if s.state == LISTEN and s.local_port == port)


def worker_connections(pid: int, port: int) -> set[str]:
    """The open connections on ``port`` that process ``pid`` has accepted (socket inodes)."""
    return socket_inodes(pid) & established_sockets(port)


def socket_inode(local_port: int, remote_port: int) -> str | None:
    """The inode of the loopback socket from ``local_port`` to ``remote_port``."""
    for found in tcp_sockets():
        if found.local_port == local_port and found.remote_port == remote_port:
            return found.inode
    return None


def holder(server_port: int, client_port: int, pids: Iterable[int]) -> int | None:
    """Which of ``pids`` holds the server's end of the connection from ``client_port``."""
    inode = socket_inode(server_port, client_port)
    if inode is None:
        return None
    return next((pid for pid in pids if inode in socket_inodes(pid)), None)
