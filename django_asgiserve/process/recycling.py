"""Worker recycling, the worker's side: ``--max-requests`` (with ``--max-requests-jitter``) and
``--max-worker-memory`` measured where they happen.

The request count is :class:`~django_asgiserve.asgi.served_count.ServedCount` (the layer is
placed by :mod:`~django_asgiserve.asgi.stack`); what memory is and how it is measured is
:mod:`memory`'s. One thread of the worker runs the checks every ``CHECK_EVERY`` seconds and,
past a limit, sends ``recycle`` once; the worker keeps serving until the supervisor replaces it
the way a reload would (whether and how is :mod:`django_asgiserve.supervisor.recycling`'s).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable

from django_asgiserve.asgi.served_count import ServedCount
from django_asgiserve.process import memory
from django_asgiserve.process.protocol import RecycleEvent, RequestsRecycleEvent
from django_asgiserve.run_config import ServerConfig

#: A limit's check: the ``recycle`` event once the worker is past it, else ``None``.
Check = Callable[[], RecycleEvent | None]

CHECK_EVERY = 0.1


def request_limit(max_requests: int, jitter: int) -> int:
    """This worker's limit: spread so that workers started together do not all go together."""
    return max_requests + random.randint(0, jitter) if max_requests else 0


def served_count(config: ServerConfig) -> ServedCount | None:
    """The count to keep for ``--max-requests``, or ``None`` without the limit."""
    return ServedCount() if config.max_requests else None


def watch_limits(
    config: ServerConfig, served: ServedCount | None, send: Callable[[RecycleEvent], object]
) -> None:
    """Start the thread that sends ``recycle`` (through ``send``) once the worker is past
    ``--max-requests`` (counted in ``served``) or ``--max-worker-memory``."""
    checks: list[Check] = []
    if served is not None:
        limit = request_limit(config.max_requests, config.max_requests_jitter)
        checks.append(requests_check(served, limit))
    if config.max_worker_memory and memory.measurable():
        checks.append(memory.MemoryCheck(config.max_worker_memory))
    if checks:
        watch(checks, send)


def requests_check(served: ServedCount, limit: int) -> Check:
    """The check that finds this worker past ``limit`` requests."""
    pid = os.getpid()

    def check() -> RequestsRecycleEvent | None:
        count = served.value
        if count < limit:
            return None
        return {"event": "recycle", "reason": "max-requests", "pid": pid, "served": count}

    return check


def watch(checks: list[Check], send: Callable[[RecycleEvent], object]) -> None:
    """Run ``checks`` every ``CHECK_EVERY`` seconds on a thread; ``send`` the first event one
    of them finds, and stop."""

    def run() -> None:
        while True:
            for check in checks:
                event = check()
                if event is not None:
                    send(event)
                    return
            time.sleep(CHECK_EVERY)

    threading.Thread(target=run, daemon=True, name="asgiserve-recycle").start()
