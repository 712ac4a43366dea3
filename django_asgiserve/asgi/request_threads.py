"""Reused request threads: the thread-sensitive thread of each request on Django's async path.

``ASGIHandler`` serves each request inside a new ``ThreadSensitiveContext``: the request's first
``sync_to_async(thread_sensitive=True)`` call starts a thread for it, and leaving the context
joins that thread (from yet another new thread, in recent asgiref). Under load, with a few dozen
requests at once, starting and joining two threads per request costs more than the request's
hops. :class:`RequestThreads` keeps a pool of single-thread executors: a request leases one for
its whole life, so it still has a thread of its own that no other request uses meanwhile, and
gives it back at its end (once the thread has run every call the request handed it). As under a
threaded WSGI server, and as on the sync fast path, a thread then serves one request after
another, with its database connection (``CONN_MAX_AGE`` holds; ``close_old_connections`` runs in
it at ``request_started`` and ``request_finished`` as before).

A task the request started that calls thread-sensitive code after the request has ended gets a
new thread, as under Django: the executor is taken out of the context before asgiref's exit.
This relies on asgiref's ``SyncToAsync.thread_sensitive_context`` and
``SyncToAsync.context_to_thread_executor`` (asgiref 3.3 to 3.13 at least); without them each
request gets Django's own fresh thread.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import SyncToAsync, ThreadSensitiveContext

#: Idle request threads kept per handler; more are ended once their request is over.
MAX_IDLE = 64
THREAD_PREFIX = "asgiserve-request"
_numbers = itertools.count(1)


class RequestThread(ThreadPoolExecutor):
    """One thread that counts the calls it has not finished, to be given back once idle."""

    def __init__(self) -> None:
        # Named apart (asgiserve-request-N_0): each executor numbers its threads from 0.
        super().__init__(max_workers=1, thread_name_prefix=f"{THREAD_PREFIX}-{next(_numbers)}")
        self.lock = threading.Lock()
        self.pending = 0
        self.when_idle: Callable[[RequestThread], None] | None = None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self.lock:
            self.pending += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self.finished)
        return future

    def finished(self, future: Future[Any]) -> None:
        with self.lock:
            self.pending -= 1
            callback = self.when_idle if self.pending == 0 else None
            if callback is not None:
                self.when_idle = None
        if callback is not None:
            callback(self)

    def after_last_call(self, callback: Callable[[RequestThread], None]) -> None:
        """Call ``callback(self)`` now if no call is pending, else once the last one is done
        (a call a cancelled request left running)."""
        with self.lock:
            if self.pending:
                self.when_idle = callback
                return
        callback(self)


def supported() -> bool:
    return hasattr(SyncToAsync, "thread_sensitive_context") and hasattr(
        SyncToAsync, "context_to_thread_executor"
    )


class RequestThreads:
    """The pool of request threads of one handler."""

    def __init__(self, max_idle: int = MAX_IDLE) -> None:
        self.max_idle = max_idle
        self.idle: list[RequestThread] = []
        self.enabled = supported()

    def give_back(self, thread: RequestThread) -> None:
        # From the loop or from the thread's own done callback: list operations are atomic.
        if len(self.idle) < self.max_idle:
            self.idle.append(thread)
        else:
            thread.shutdown(wait=False)

    @contextlib.asynccontextmanager
    async def context(self) -> AsyncIterator[None]:
        """What ``ASGIHandler.__call__`` enters around a request, with a leased thread."""
        context = ThreadSensitiveContext()
        async with context:
            executors = SyncToAsync.context_to_thread_executor if self.enabled else None
            if executors is None or SyncToAsync.thread_sensitive_context.get(None) is not context:
                yield  # an enclosing context decides the thread (a handler inside a handler)
                return
            try:
                thread = self.idle.pop()
            except IndexError:
                thread = RequestThread()
            executors[context] = thread
            try:
                yield
            finally:
                if executors.get(context) is thread:
                    del executors[context]
                thread.after_last_call(self.give_back)
