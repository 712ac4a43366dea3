"""Waiting for a condition: the tests' one poller and its deadline.

Nothing in the suite sleeps to synchronise; every wait polls what it expects against a deadline
generous enough for a busy 2-core machine running several servers at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

#: Generous: a 2-core CI machine running several servers at once can be slow.
DEADLINE = 30.0


def wait_for(condition: Callable[[], object], timeout: float = DEADLINE, what: str = "") -> object:
    """Poll ``condition`` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what or condition}")
        time.sleep(0.02)
