"""The supervisor's time: every delay, timeout and back-off reads one clock, so that in-process
tests can drive the supervisor with a clock they move themselves."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds, monotonic."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real one: ``time.monotonic`` and ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def first_done(*futures: asyncio.Future[Any]) -> None:
    """Return once one of ``futures`` is done (cancelling none)."""
    await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)


async def wait_for(clock: Clock, future: asyncio.Future[Any], seconds: float | None) -> bool:
    """Whether ``future`` is done within ``seconds`` of ``clock`` (``None``: no bound); it is
    never cancelled here, others may wait for it too."""
    if future.done():
        return True
    if seconds is None:
        await asyncio.wait([future])
        return True
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait([future, timer], return_when=asyncio.FIRST_COMPLETED)
    finally:
        timer.cancel()
    return future.done()
