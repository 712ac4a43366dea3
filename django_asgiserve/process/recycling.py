"""``--max-requests`` and ``--max-requests-jitter``: a worker that has served its share asks to
be replaced, the way a reload replaces one (the new worker ready first, this one drained).

The count is one integer in an ASGI layer, in memory shared with the processes a backend forks
(gunicorn's workers count into the same one: gunicorn's own ``max_requests``, which uvicorn's
worker honours, ends a worker with connections it had accepted reset). A thread of the worker
looks at it every ``CHECK_EVERY`` seconds and, past the limit, sends ``recycle`` once; the worker
keeps serving until the supervisor retires it (:func:`recycle`, on the supervisor's side).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from multiprocessing.sharedctypes import RawValue
from typing import TYPE_CHECKING, Any

from django_asgiserve.asgi.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from django_asgiserve.process.children import Worker
    from django_asgiserve.process.pool import Pool


def request_limit(max_requests: int, jitter: int) -> int:
    """This worker's limit: spread so that workers started together do not all go together."""
    return max_requests + random.randint(0, jitter) if max_requests else 0


CHECK_EVERY = 0.1


def limit_requests(app: ASGIApp, limit: int, ask_to_recycle: Callable[[], object]) -> ASGIApp:
    """``app``, with ``ask_to_recycle`` called once after ``limit`` requests (in this process
    and the ones it forks later)."""
    # Unlocked: processes that race on an increment lose a count, which only delays a recycle.
    served: Any = RawValue("Q", 0)

    async def counting_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            served.value += 1
        await app(scope, receive, send)

    def watch() -> None:
        while served.value < limit:
            time.sleep(CHECK_EVERY)
        ask_to_recycle()

    threading.Thread(target=watch, daemon=True, name="asgiserve-recycle").start()
    return counting_app


async def recycle(pool: Pool, worker: Worker) -> None:
    """Replace ``worker`` as a reload would: its replacement ready first, then it drains."""
    async with pool.reload_lock:
        preloader = await pool.current_preloader()
        if worker not in pool.workers or pool.draining or pool.stop_requested.is_set():
            return
        if preloader is None or not preloader.can_fork or preloader.closed.done():
            return  # a reload will replace it
        replacement = await pool.spawn(preloader, worker.slot)
        if replacement is None or worker not in pool.workers:
            return
        pool.workers.discard(worker)
        pool.admit([replacement])
        pool.in_background(pool.retire(worker))
