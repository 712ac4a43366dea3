"""Worker recycling: ``--max-requests`` (with ``--max-requests-jitter``) and
``--max-worker-memory``. A worker past a limit asks to be replaced, the way a reload replaces
one (the new worker ready first, this one drained).

The request count is one integer in an ASGI layer, in memory shared with the processes a backend
forks (gunicorn's workers count into the same one: gunicorn's own ``max_requests``, which
uvicorn's worker honours, ends a worker with connections it had accepted reset); what memory is
and how it is measured is :mod:`memory`'s. One thread of the worker runs the checks every
``CHECK_EVERY`` seconds and, past a limit, sends ``recycle`` once; the worker keeps serving
until the supervisor retires it (:func:`recycle`, on the supervisor's side, which says why).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from multiprocessing.sharedctypes import RawValue
from typing import TYPE_CHECKING, Any

from django_asgiserve.asgi.types import ASGIApp, Receive, Scope, Send
from django_asgiserve.process import memory
from django_asgiserve.process.protocol import RecycleEvent, RequestsRecycleEvent
from django_asgiserve.run_config import ServerConfig

if TYPE_CHECKING:
    from django_asgiserve.process.children import Worker
    from django_asgiserve.process.pool import Pool

#: A limit's check: the ``recycle`` event once the worker is past it, else ``None``.
Check = Callable[[], RecycleEvent | None]

CHECK_EVERY = 0.1


def request_limit(max_requests: int, jitter: int) -> int:
    """This worker's limit: spread so that workers started together do not all go together."""
    return max_requests + random.randint(0, jitter) if max_requests else 0


def with_limits(
    app: ASGIApp, config: ServerConfig, send: Callable[[RecycleEvent], object]
) -> ASGIApp:
    """``app`` (counting requests for ``--max-requests``), and a thread that sends ``recycle``
    (through ``send``) once the worker is past ``--max-requests`` or ``--max-worker-memory``."""
    checks: list[Check] = []
    if config.max_requests:
        limit = request_limit(config.max_requests, config.max_requests_jitter)
        app, counted = limit_requests(app, limit)
        checks.append(counted)
    if config.max_worker_memory and memory.measurable():
        checks.append(memory.MemoryCheck(config.max_worker_memory))
    if checks:
        watch(checks, send)
    return app


def limit_requests(app: ASGIApp, limit: int) -> tuple[ASGIApp, Check]:
    """``app`` counting its requests (in this process and the ones it forks later), and the
    check that finds it past ``limit``."""
    # Unlocked: processes that race on an increment lose a count, which only delays a recycle.
    served: Any = RawValue("Q", 0)
    pid = os.getpid()

    async def counting_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            served.value += 1
        await app(scope, receive, send)

    def check() -> RequestsRecycleEvent | None:
        count = int(served.value)
        if count < limit:
            return None
        return {"event": "recycle", "reason": "max-requests", "pid": pid, "served": count}

    return counting_app, check


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


def why(worker: Worker, event: RecycleEvent, config: ServerConfig) -> str:
    """The line that says why ``worker`` is replaced."""
    if event["reason"] == "max-memory":
        return memory.replacing_line(worker.pid, event, config.max_worker_memory)
    limit = f"--max-requests {config.max_requests}"
    if config.max_requests_jitter:
        limit += f", --max-requests-jitter {config.max_requests_jitter}"
    return f"Worker {worker.pid} served {event['served']} requests ({limit}): replacing it."


async def recycle(pool: Pool, worker: Worker, event: RecycleEvent) -> None:
    """Replace ``worker`` as a reload would: its replacement ready first, then it drains."""
    if event["reason"] == "max-memory" and memory.started_too_big(
        event, pool.config.max_worker_memory
    ):
        if not pool.warned_too_big:
            pool.warned_too_big = True
            pool.warn(memory.too_big_warning(worker.pid, event, pool.config.max_worker_memory))
        return
    async with pool.reload_lock:
        preloader = await pool.current_preloader()
        if worker not in pool.workers or pool.drain.active or pool.stop_requested.is_set():
            return
        if preloader is None or not preloader.can_fork or preloader.closed.done():
            return  # a reload will replace it
        pool.say(why(worker, event, pool.config))
        replacement = await pool.spawn(preloader, worker.slot)
        if replacement is None or worker not in pool.workers:
            return
        pool.workers.discard(worker)
        pool.admit([replacement])
        pool.in_background(pool.retire(worker))
