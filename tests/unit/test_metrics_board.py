"""The metrics board, with real forked processes: each counts in a slot of its own, a dead
owner's slot is taken over with its counters kept and its gauges zeroed, gauges count live
owners only, and processes counting at once lose no increment."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator

import pytest

from django_asgiserve.process.metrics_board import (
    BUCKETS,
    FIRST_STATUS,
    IN_FLIGHT,
    SLOT_BYTES,
    SLOTS,
    Board,
    process_start,
    record_request,
)

MS = 1_000_000


@pytest.fixture
def board() -> Iterator[Board]:
    board = Board.create()
    yield board
    board.close()


def fork(body: Callable[[], None], before: Callable[[], None] = lambda: None) -> int:
    """Run ``body`` in a forked child (``before`` first); its pid. It exits 0 if ``body``
    returned, 1 if it raised."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            before()
            body()
            code = 0
        finally:
            os._exit(code)
    return pid


def wait(pid: int) -> None:
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def owners(board: Board) -> list[int]:
    slots = (struct.unpack_from("q", board.memory, i * SLOT_BYTES)[0] for i in range(SLOTS))
    return [owner for owner in slots if owner]


def test_each_process_counts_in_a_slot_of_its_own(board):
    mine = board.claim()
    record_request(mine, 200, MS)
    record_request(mine, 200, MS)

    def child() -> None:
        assert board.slot is None  # the parent's slot is forgotten in a fork
        slot = board.claim()
        assert slot is not None and slot[FIRST_STATUS + 200] == 0
        for _ in range(3):
            record_request(slot, 404, MS)

    wait(fork(child))
    totals = board.totals()
    assert totals.statuses == {200: 2, 404: 3}
    assert totals.requests == 5
    assert len(owners(board)) == 2


def test_a_dead_owners_slot_is_taken_over_counters_kept_gauges_zeroed(board):
    def killed_mid_request() -> None:
        slot = board.claim()
        for _ in range(5):
            record_request(slot, 200, MS)
        slot[IN_FLIGHT] += 1  # and it never ends

    wait(fork(killed_mid_request))
    assert board.totals().requests == 5
    assert board.totals().in_flight == 0  # its owner is gone

    def successor() -> None:
        slot = board.claim()
        assert slot[IN_FLIGHT] == 0 and slot[FIRST_STATUS + 200] == 5
        record_request(slot, 200, MS)

    wait(fork(successor))
    assert board.totals().statuses == {200: 6}
    assert len(owners(board)) == 1


def test_gauges_count_live_owners_only(board):
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()

    def open_request() -> None:
        slot = board.claim()
        slot[IN_FLIGHT] += 1
        os.write(ready_w, b"x")
        os.read(done_r, 1)  # until the parent has looked

    pid = fork(open_request)
    os.read(ready_r, 1)
    assert board.totals().in_flight == 1
    os.write(done_w, b"x")
    wait(pid)
    assert board.totals().in_flight == 0
    for fd in (ready_r, ready_w, done_r, done_w):
        os.close(fd)


def test_processes_counting_at_once_lose_no_increment(board):
    claimed_r, claimed_w = os.pipe()
    go_r, go_w = os.pipe()
    per_child, children = 20_000, 4

    def count() -> None:
        slot = board.claim()  # each its own: every other claimant is alive until all count
        os.write(claimed_w, b"x")
        os.read(go_r, 1)
        for _ in range(per_child):
            record_request(slot, 200, MS)

    pids = [fork(count) for _ in range(children)]
    # Only once all have claimed: a child that ended first would leave its slot to the next.
    for _ in range(children):
        os.read(claimed_r, 1)
    assert len(owners(board)) == children
    os.write(go_w, b"x" * children)
    for pid in pids:
        wait(pid)
    totals = board.totals()
    assert totals.statuses == {200: per_child * children}
    assert totals.requests == per_child * children
    for fd in (claimed_r, claimed_w, go_r, go_w):
        os.close(fd)


def test_durations_fall_in_prometheus_buckets(board):
    slot = board.claim()
    for elapsed in (1 * MS, 5 * MS, 6 * MS, 10_000 * MS, 20_000 * MS):
        record_request(slot, 200, elapsed)
    record_request(slot, 999, MS)  # not a status code: counted apart
    totals = board.totals()
    assert totals.buckets[BUCKETS.index(0.005)] == 3  # 1 ms, exactly 5 ms, and the 999
    assert totals.buckets[BUCKETS.index(0.01)] == 1
    assert totals.buckets[BUCKETS.index(10.0)] == 1  # le is "less than or equal"
    assert totals.buckets[-1] == 1  # +Inf
    assert totals.duration_seconds == pytest.approx(30.013)
    assert totals.statuses == {200: 5, 0: 1}


def test_a_reaped_process_is_not_an_owner():
    pid = fork(lambda: None)
    assert process_start(os.getpid()) is not None
    wait(pid)
    assert process_start(pid) is None


def test_a_full_board_leaves_a_process_uncounted_and_says_so_once(board, capfd):
    alive = os.getppid()
    for index in range(SLOTS):  # every slot owned by a live process that is not this one
        struct.pack_into("qq", board.memory, index * SLOT_BYTES, alive, process_start(alive))
    assert board.claim() is None
    assert board.claim() is None
    assert capfd.readouterr().err == (
        f"--metrics: process {os.getpid()} does not count: {SLOTS} processes count already.\n"
    )
