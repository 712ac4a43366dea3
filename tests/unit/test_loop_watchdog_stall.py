"""What the loop watchdog blames for a late heartbeat: the code the loop runs, never the code
that started the loop (``manage.py``, a server's ``run``), which is outside the loop's own
machinery on the same stack."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path
from types import FrameType, ModuleType

from django_asgiserve.insight.loop_watchdog import describe
from tests.helpers.polling import wait_for

#: A project's entry point that runs a loop, as ``manage.py`` does under gunicorn's worker; the
#: loop runs one callback of the project's, which blocks in ``time.sleep`` when asked.
ENTRY = """
import asyncio, threading, time

inside = threading.Event()
release = threading.Event()

def blocking_callback():
    inside.set()
    release.wait()

async def idle():
    inside.set()
    await asyncio.sleep(0.2)
    while not release.is_set():
        await asyncio.sleep(0.01)

def main(block):
    if block:
        async def run():
            asyncio.get_running_loop().call_soon(blocking_callback)
            while not release.is_set():
                await asyncio.sleep(0.01)
        asyncio.run(run())
    else:
        asyncio.run(idle())
"""


def load_entry(tmp_path: Path) -> ModuleType:
    path = tmp_path / "manage_like.py"
    path.write_text(ENTRY)
    spec = importlib.util.spec_from_file_location("manage_like", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stack_of(tmp_path: Path, block: bool, innermost_in: str) -> FrameType:
    """The loop thread's stack once its innermost frame is in the module ``innermost_in``."""
    entry = load_entry(tmp_path)
    thread = threading.Thread(target=entry.main, args=(block,))
    thread.start()
    try:
        wait_for(entry.inside.is_set, what="the loop running")

        def innermost() -> FrameType | None:
            frame = sys._current_frames().get(thread.ident or 0)
            if frame is None or frame.f_globals.get("__name__") != innermost_in:
                return None
            return frame

        frame = wait_for(innermost, what=f"the loop's thread in {innermost_in}")
        assert isinstance(frame, FrameType)
        return frame
    finally:
        entry.release.set()
        thread.join(10)


def test_a_loop_idle_in_its_selector_blames_nobody(tmp_path):
    # The loop's thread waits in select() (or did not get the CPU): its stack reaches the
    # project only through what started the loop.
    stall = describe(stack_of(tmp_path, block=False, innermost_in="selectors"))
    assert stall is None, stall


def test_a_callback_of_the_project_that_blocks_is_named(tmp_path):
    stall = describe(stack_of(tmp_path, block=True, innermost_in="threading"))
    assert stall is not None
    assert stall.project_frame is not None and "blocking_callback" in stall.project_frame
    assert stall.library_call is not None and "wait" in stall.library_call
