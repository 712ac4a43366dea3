"""Ctrl+C is the supervisor's alone.

The terminal sends SIGINT to the whole process group, children included; they must ignore it and
let the supervisor stop them in order. A child is started with SIGINT blocked, so that one
arriving before it has set its own disposition waits, and is then discarded by ``ignore()``.

The supervisor holds SIGINT and SIGTERM from the moment it forks its first workers until its
event loop takes them (``hold_stops``, ``release_stops``): a stop in between waits for the loop
instead of killing the supervisor under its children.

Windows has no signal masks: there a console's Ctrl+C and Ctrl+Break reach every process of the
console, and a child ignores both as its first step.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator

STOPS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Block SIGINT in this thread while a child is started; it is delivered afterwards (unless
    it was held already: the mask is put back as it was)."""
    if sys.platform == "win32":
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def hold_stops() -> None:
    """Block SIGINT and SIGTERM in this thread (and in the children it starts) for now."""
    if sys.platform != "win32":
        signal.pthread_sigmask(signal.SIG_BLOCK, STOPS)


def release_stops() -> None:
    """Deliver SIGINT and SIGTERM again (one that waited, now)."""
    if sys.platform != "win32":
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)


def ignore() -> None:
    """In a child: ignore SIGINT (and Ctrl+Break on Windows) from now on (dropping one that
    waited), then unblock it and SIGTERM (which the child handles as it sees fit, having set
    its disposition first)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform == "win32":
        signal.signal(signal.SIGBREAK, signal.SIG_IGN)
    release_stops()
