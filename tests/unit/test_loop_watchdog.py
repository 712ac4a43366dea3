"""The loop watchdog's reading of a stalled loop's stack (``insight/loop_watchdog.describe``), in
process: a loop thread is caught in a real state, its stack read as the watchdog reads it.

A loop idle in its own code (polling, or between callbacks) is no stall of the project's, even
though the launcher that started the loop (``manage.py``, here this module) is project code out
from it: on a busy machine the heartbeat comes late while the loop waits for a core, and the
warning named ``manage.py:19 in main`` as the blocking line. A callback blocking in project code
is still a stall, named by its line.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

import pytest

from django_asgiserve.insight.loop_watchdog import describe
from tests.helpers.polling import wait_for

LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop
}
try:
    import uvloop

    LOOP_FACTORIES["uvloop"] = uvloop.new_event_loop
except ImportError:  # uvicorn's standard extra brings it; without it, asyncio's loop alone
    pass


@contextmanager
def loop_thread(
    factory: Callable[[], asyncio.AbstractEventLoop], first: Callable[[], None] | None = None
) -> Iterator[threading.Thread]:
    """A thread running a loop from this module (as ``manage.py`` starts a server's), idle once
    it has run ``first``; it has run a callback when this yields."""
    loop = factory()
    started = threading.Event()
    stopped = loop.create_future()

    def run() -> None:  # project code calling into the loop, as manage.py does
        loop.call_soon(started.set)
        if first is not None:
            loop.call_soon(first)
        loop.run_until_complete(stopped)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        started.wait()
        yield thread
    finally:
        loop.call_soon_threadsafe(stopped.set_result, None)
        thread.join()
        loop.close()


def frame_of(thread: threading.Thread) -> FrameType:
    assert thread.ident is not None
    return sys._current_frames()[thread.ident]


@pytest.mark.parametrize("loop", list(LOOP_FACTORIES))
def test_a_loop_in_its_own_code_is_no_stall(loop: str) -> None:
    with loop_thread(LOOP_FACTORIES[loop]) as thread:
        # Whatever the moment: the loop runs no callback of this module from now on.
        assert describe(frame_of(thread)) is None


def blocking() -> None:
    time.sleep(1)  # blocks the loop


@pytest.mark.parametrize("loop", list(LOOP_FACTORIES))
def test_a_callback_blocking_in_project_code_is_a_stall_at_its_line(loop: str) -> None:
    with loop_thread(LOOP_FACTORIES[loop], first=blocking) as thread:
        wait_for(lambda: frame_of(thread).f_code is blocking.__code__)
        stall = describe(frame_of(thread))
    assert stall is not None
    assert stall.project_frame is not None
    assert stall.project_frame.endswith("in blocking"), stall
    assert stall.project_source == "time.sleep(1)  # blocks the loop"
    assert stall.library_call == "time.sleep"
