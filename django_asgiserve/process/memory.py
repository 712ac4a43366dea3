"""``--max-worker-memory``, the worker's side: what a worker's memory is and how it is measured.

A worker's memory is the resident set size (``VmRSS`` in ``/proc/PID/status``, what ``ps`` and
``top`` show as RSS) of each process that serves for it: the worker, and every process it forked
(gunicorn's arbiter and gunicorn's workers). Each process is held to the limit on its own and the
largest one counts, as granian's ``--workers-max-rss`` holds each worker process: pages a worker
shares with the preloader (copy-on-write) are resident in every process that maps them, so a sum
over gunicorn's workers would count them once per process.

The worker's recycle thread (:mod:`recycling`) measures every ``CHECK_EVERY`` seconds and sends
``recycle`` (``max-memory``) once when the largest process is past the limit. It also sends its
size when it started serving: a worker that starts past the limit (a project bigger than the
limit) cannot be helped by a new one, which would be as big, so the supervisor warns once and
leaves such workers be rather than replacing one every second (that decision is
:mod:`django_asgiserve.supervisor.recycling`'s).

Only where ``/proc`` exists (Linux); elsewhere the limit is off and the command says so.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from django_asgiserve.process.protocol import MemoryRecycleEvent

#: Seconds between two measurements of a worker's processes.
CHECK_EVERY = 1.0
KIB_PER_MB = 1024
#: Whether the kernel lists each thread's children (``CONFIG_PROC_CHILDREN``, as most do).
LISTS_CHILDREN = os.path.exists(f"/proc/self/task/{os.getpid()}/children")


def measurable() -> bool:
    """Whether this system shows processes' memory in ``/proc`` (Linux does)."""
    return os.path.exists(f"/proc/{os.getpid()}/status")


def resident_kib(pid: int) -> int | None:
    """The resident set of ``pid`` in KiB; ``None`` once it is gone (or has none: a zombie)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def children(pid: int) -> list[int]:
    """The processes ``pid`` forked, from any of its threads (``/proc/PID/task/TID/children``),
    or found by their parent in ``/proc`` on kernels without those files."""
    if not LISTS_CHILDREN:
        return _children_by_parent(pid)
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for tid in tasks:
        try:
            listed = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue  # a thread that has just ended
        found += [int(child) for child in listed.split()]
    return found


def _children_by_parent(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def largest_process(root: int) -> tuple[int, int]:
    """The process of ``root``'s tree (itself and its descendants) with the largest resident
    set, and that set in KiB (0 for a tree that is gone)."""
    largest = (root, 0)
    pending = deque([root])
    while pending:
        pid = pending.popleft()
        kib = resident_kib(pid)
        if kib is not None and kib > largest[1]:
            largest = (pid, kib)
        pending.extend(children(pid))
    return largest


class MemoryCheck:
    """The worker's check (run by its recycle thread): the ``recycle`` event once a process
    of this worker is past ``limit_mb``, else ``None``. Measures at most every ``CHECK_EVERY``
    seconds of ``clock``; the first measurement is the worker's size as it starts serving."""

    def __init__(self, limit_mb: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit_kib = limit_mb * KIB_PER_MB
        self.clock = clock
        self.root = os.getpid()
        self.start_kib: int | None = None
        self.next_at = 0.0

    def __call__(self) -> MemoryRecycleEvent | None:
        now = self.clock()
        if now < self.next_at:
            return None
        self.next_at = now + CHECK_EVERY
        pid, kib = largest_process(self.root)
        if self.start_kib is None:
            self.start_kib = kib
        if kib <= self.limit_kib:
            return None
        return {
            "event": "recycle",
            "reason": "max-memory",
            "pid": pid,
            # Rounded up: a size past the limit never reads as the limit itself.
            "rss_mb": -(-kib // KIB_PER_MB),
            "start_rss_mb": self.start_kib // KIB_PER_MB,
        }


UNAVAILABLE = "--max-worker-memory is off: this system has no /proc to read a worker's memory from."
