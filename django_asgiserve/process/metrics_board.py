"""The metrics board (``--metrics``): one block of shared memory where every serving process
counts its requests, and which the supervisor sums when it is scraped.

The supervisor makes the board before anything forks (``memfd_create``, else an unlinked
temporary file); its descriptor is inherited by the first workers, passed to each preloader
and so to every worker forked from one, and shared by the processes a backend forks (gunicorn's
workers). The board is ``SLOTS`` slots of 64-bit words. Each serving process claims a slot of
its own on its first request (:meth:`Board.claim`, under an ``fcntl`` lock on the board, which
holds across processes that were exec'd) and is the only one to write it: no increment is lost
and a request takes no lock. A slot whose owner has died can be claimed again: the new owner
goes on adding to its counters, so totals never go down when a worker is recycled, reloaded or
killed, and starts its gauges from zero. The supervisor reads every slot at scrape time
(:meth:`Board.totals`): counters from all of them, gauges from those whose owner is alive.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import mmap
import os
import struct
import sys
import tempfile
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

#: Serving processes that can be counted at once (a dead one's slot is taken over).
SLOTS = 256
#: The histogram's upper bounds in seconds (Prometheus' default buckets); +Inf follows.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BUCKETS_NS = tuple(round(bound * 1e9) for bound in BUCKETS)
#: Status codes counted one by one (100 to 599); any other is counted as ``OTHER_STATUS``.
STATUS_CODES = 600
OTHER_STATUS = 0

# The words of a slot.
OWNER = 0  # pid of the process writing it; 0: never claimed
OWNER_START = 1  # when that process started (see process_start): a reused pid is not it
IN_FLIGHT = 2
WEBSOCKETS_OPEN = 3
WEBSOCKETS_TOTAL = 4
DURATION_NS = 5  # the histogram's sum, in nanoseconds
FIRST_BUCKET = 6  # len(BUCKETS) + 1 words, not cumulative
FIRST_STATUS = FIRST_BUCKET + len(BUCKETS) + 1  # STATUS_CODES words, indexed by status code
GAUGES = (IN_FLIGHT, WEBSOCKETS_OPEN)
#: Words per slot, rounded up to whole 64-byte cache lines so that two owners never share one.
WORDS = -(-(FIRST_STATUS + STATUS_CODES) // 8) * 8
SLOT_BYTES = WORDS * 8
SIZE = SLOTS * SLOT_BYTES

#: One slot as the owner writes it: ``slot[IN_FLIGHT] += 1``.
Slot = Any


@dataclass
class Totals:
    """The board summed over every slot (gauges: over the live owners only)."""

    statuses: dict[int, int] = field(default_factory=dict)
    #: Requests per histogram bucket (not cumulative), the last one +Inf.
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    duration_seconds: float = 0.0
    in_flight: int = 0
    websockets_open: int = 0
    websockets_total: int = 0

    @property
    def requests(self) -> int:
        return sum(self.buckets)


class Board:
    """The shared memory, as mapped in one process, and that process's slot once claimed."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.memory = mmap.mmap(fd, SIZE)
        #: This process's slot (None until its first request; a forked child starts anew).
        self.slot: Slot | None = None
        self.warned = False
        if sys.platform != "win32":
            os.register_at_fork(after_in_child=self.forget)

    @classmethod
    def create(cls) -> Board:
        """A new, zeroed board (in the supervisor, before it forks or starts a preloader)."""
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create("asgiserve-metrics")
        else:  # macOS: a file that no other process can open by name
            fd, path = tempfile.mkstemp(prefix="asgiserve-metrics-")
            os.unlink(path)
        os.ftruncate(fd, SIZE)
        return cls(fd)

    def forget(self) -> None:
        """In a forked child: the parent's slot is not ours to write."""
        self.slot = None

    def claim(self) -> Slot | None:
        """This process's slot: a free one, or one whose owner has died (its counters kept, its
        gauges zeroed); ``None`` (said once) when every slot has a live owner or the board
        cannot be locked."""
        if self.slot is not None:
            return self.slot
        if sys.platform == "win32":
            self.cannot_count("the metrics board needs POSIX file locks (not on Windows)")
            return None
        me = os.getpid()
        started = process_start(me) or 0
        try:
            fcntl.lockf(self.fd, fcntl.LOCK_EX)  # per process, unlike flock on a shared descriptor
        except OSError as error:  # never a failed request for the sake of a count
            self.cannot_count(f"the metrics board cannot be locked ({error})")
            return None
        try:
            for index in range(SLOTS):
                slot = (ctypes.c_int64 * WORDS).from_buffer(self.memory, index * SLOT_BYTES)
                owner = slot[OWNER]
                if owner and owner != me and process_start(owner) == slot[OWNER_START]:
                    continue
                for word in GAUGES:
                    slot[word] = 0
                slot[OWNER_START] = started
                slot[OWNER] = me
                self.slot = slot
                return slot
        finally:
            fcntl.lockf(self.fd, fcntl.LOCK_UN)
        self.cannot_count(f"{SLOTS} processes count already")
        return None

    def cannot_count(self, why: str) -> None:
        """Say once that this process's requests go uncounted, and why."""
        if not self.warned:
            self.warned = True
            sys.stderr.write(f"--metrics: process {os.getpid()} does not count: {why}.\n")

    def totals(self) -> Totals:
        """Every slot summed (read without locking: each word is written whole)."""
        totals = Totals()
        statuses = [0] * STATUS_CODES
        for index in range(SLOTS):
            offset = index * SLOT_BYTES
            if not struct.unpack_from("q", self.memory, offset)[0]:
                continue  # never claimed
            words = struct.unpack_from(f"{WORDS}q", self.memory, offset)
            if process_start(words[OWNER]) == words[OWNER_START]:
                totals.in_flight += words[IN_FLIGHT]
                totals.websockets_open += words[WEBSOCKETS_OPEN]
            totals.websockets_total += words[WEBSOCKETS_TOTAL]
            totals.duration_seconds += words[DURATION_NS] / 1e9
            for bucket in range(len(BUCKETS) + 1):
                totals.buckets[bucket] += words[FIRST_BUCKET + bucket]
            for code, count in enumerate(words[FIRST_STATUS : FIRST_STATUS + STATUS_CODES]):
                statuses[code] += count
        totals.statuses = {code: count for code, count in enumerate(statuses) if count}
        return totals

    def close(self) -> None:
        with contextlib.suppress(BufferError):  # a slot of this process still points into it
            self.memory.close()
        with contextlib.suppress(OSError):
            os.close(self.fd)


def record_request(slot: Slot, status: int, elapsed_ns: int) -> None:
    """Count one answered request with ``status``, ``elapsed_ns`` after it arrived."""
    slot[FIRST_STATUS + (status if 100 <= status < STATUS_CODES else OTHER_STATUS)] += 1
    slot[DURATION_NS] += elapsed_ns
    slot[FIRST_BUCKET + bisect_left(BUCKETS_NS, elapsed_ns)] += 1


#: Whether processes can be looked up in ``/proc`` (Linux), with their start times.
PROC = os.path.isdir("/proc/self")


def process_start(pid: int) -> int | None:
    """When live process ``pid`` started (clock ticks since boot; 0 without ``/proc``), or
    ``None`` if it is gone (or a zombie): a pid the kernel gave to another process since is
    not the owner it was."""
    if PROC:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:
            return None
        return None if fields[0] in (b"Z", b"X") else int(fields[19])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's: not ours, but not free either
    return 0
