"""What ``--max-worker-memory`` measures (in process, on real processes): the largest resident
set of a process tree, the worker's check past its limit, and a worker too big from the start."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from django_asgiserve.process import memory
from django_asgiserve.supervisor import recycling

pytestmark = pytest.mark.skipif(not memory.measurable(), reason="needs /proc")

MIB = 1024 * 1024


def own_mb() -> int:
    kib = memory.resident_kib(os.getpid())
    assert kib is not None
    return kib // 1024


@pytest.fixture
def big_child() -> Iterator[subprocess.Popen[str]]:
    """A child of this process holding 200 MiB more than this process does."""
    size = (own_mb() + 200) * MIB
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys; kept = b'x' * {size}; print('ok', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline() == "ok\n"
    yield child
    child.kill()
    child.wait()


def test_the_largest_process_of_a_tree_counts(big_child) -> None:
    assert big_child.pid in memory.children(os.getpid())
    assert set(memory.children(os.getpid())) == set(memory._children_by_parent(os.getpid()))
    pid, kib = memory.largest_process(os.getpid())
    assert pid == big_child.pid
    assert kib // 1024 >= own_mb() + 150


def test_a_process_that_is_gone_has_no_memory() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert memory.resident_kib(child.pid) is None
    assert memory.largest_process(child.pid) == (child.pid, 0)


def test_the_check_fires_past_the_limit_and_keeps_the_start_size() -> None:
    start = own_mb()
    now = [0.0]
    check = memory.MemoryCheck(start + 100, clock=lambda: now[0])
    assert check() is None
    kept = b"x" * (150 * MIB)
    now[0] += memory.CHECK_EVERY - 0.01
    assert check() is None, "measured again within CHECK_EVERY"
    now[0] += 0.02
    event = check()
    assert event is not None
    assert event["reason"] == "max-memory" and event["pid"] == os.getpid()
    assert event["rss_mb"] > start + 100 and event["start_rss_mb"] < start + 100
    assert not recycling.started_too_big(event, start + 100)
    assert recycling.replacing_line(os.getpid(), event, start + 100) == (
        f"Worker {os.getpid()} uses {event['rss_mb']} MB (--max-worker-memory {start + 100}): "
        "replacing it."
    )
    del kept


def test_a_worker_too_big_from_the_start_is_told_apart() -> None:
    event = memory.MemoryCheck(1)()
    assert event is not None and recycling.started_too_big(event, 1)
    assert "a new worker would be as big" in recycling.too_big_warning(1234, event, 1)
