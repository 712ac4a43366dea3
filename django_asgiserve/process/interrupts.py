"""Ctrl+C is the supervisor's alone.

The terminal sends SIGINT to the whole process group, children included; they must ignore it and
let the supervisor stop them in order. A child is started with SIGINT blocked, so that one
arriving before it has set its own disposition waits, and is then discarded by ``ignore()``.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

BLOCKABLE = hasattr(signal, "pthread_sigmask")


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Block SIGINT in this thread while a child is started; it is delivered afterwards."""
    if not BLOCKABLE:
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def ignore() -> None:
    """In a child: ignore SIGINT from now on (dropping one that waited), then unblock it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if BLOCKABLE:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
