"""A request's lease on one thread of the worker's request threads (``request_threads.py``):
every call made for the request runs in that thread, in order, and no other request's call runs
there until the lease is released and its last call is over.

A :class:`Lease` is a ``concurrent.futures.Executor``, so asgiref's ``sync_to_async`` and a
``ThreadSensitiveContext`` can hand it calls. Each hold on a thread is a :class:`Term`: from the
lease's first call (the pool binds it to a thread then, or once a place is free) to its release
and the end of the calls submitted before. The end of a term is settled before the caller of its
last call hears of it, so the next request finds the thread idle.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from asgiref.sync import sync_to_async

_R = TypeVar("_R")
_P = ParamSpec("_P")


class RequestThread(Protocol):
    """A request thread as a term sees it (``request_threads.RequestThread``, which imports this
    module): where the term's calls go."""

    inbox: queue.SimpleQueue[Job | None]


class RequestThreads(Protocol):
    """The pool of request threads as a lease sees it (``request_threads.RequestThreads``)."""

    def request(self, term: Term) -> None: ...

    def park(self, term: Term) -> None: ...

    def finished(self, term: Term) -> None: ...


class Job:
    """A call for a request's thread, with the term it belongs to."""

    __slots__ = ("args", "fn", "future", "kwargs", "term")

    def __init__(
        self, term: Term, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.term = term
        self.future: Future[Any] = Future()
        self.fn, self.args, self.kwargs = fn, args, kwargs


class Term:
    """One lease's hold on one thread, from its first call to its release and the end of its
    last call: calls submitted before it has a thread wait in ``buffer``."""

    __slots__ = ("buffer", "counted", "lock", "pending", "released", "thread")

    def __init__(self, counted: bool) -> None:
        self.counted = counted  # holds a place in the pool's bound (changed under the pool's lock)
        self.lock = threading.Lock()
        self.thread: RequestThread | None = None
        self.buffer: list[Job] = []
        self.pending = 0
        self.released = False

    def add(self, job: Job) -> None:
        with self.lock:
            self.pending += 1
            if self.thread is None:
                self.buffer.append(job)
            else:
                self.thread.inbox.put(job)

    def bind(self, thread: RequestThread) -> None:
        with self.lock:
            self.thread = thread
            for job in self.buffer:
                thread.inbox.put(job)
            self.buffer.clear()

    def release(self) -> bool:
        """Whether the thread is free now (else the end of the last call frees it)."""
        with self.lock:
            self.released = True
            return self.pending == 0

    def call_done(self) -> bool:
        """In the thread, before the caller hears of it: whether that was the last call."""
        with self.lock:
            self.pending -= 1
            return self.released and self.pending == 0


class Lease(Executor):
    """A request's thread, as an executor: every call submitted runs in the same thread, in
    order. The thread is taken from the pool at the first call and given back at
    :meth:`release`, once the calls submitted before have run; a call after that starts a new
    term, in whichever thread the pool gives it."""

    def __init__(self, pool: RequestThreads, counted: bool) -> None:
        self.pool = pool
        self.counted = counted
        self.lock = threading.Lock()
        self.term: Term | None = None

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self.lock:
            term = self.term
            first = term is None
            if term is None:
                term = self.term = Term(self.counted)
            job = Job(term, fn, args, kwargs)
            term.add(job)
        if first:
            self.pool.request(term)
        return job.future

    def hop(self, fn: Callable[_P, _R]) -> Callable[_P, Coroutine[Any, Any, _R]]:
        """``fn`` as a coroutine function that runs it in the leased thread, through asgiref's
        ``sync_to_async`` (the caller's context goes along, and ``async_to_sync`` in there runs
        on this event loop)."""
        # asgiref's hints say ThreadPoolExecutor; it hands any Executor to run_in_executor.
        executor = cast(ThreadPoolExecutor, self)
        return sync_to_async(fn, thread_sensitive=False, executor=executor)

    async def run(self, fn: Callable[..., _R], *args: Any) -> _R:
        """``fn(*args)`` in the leased thread (see :meth:`hop`)."""
        return await self.hop(fn)(*args)

    def park(self) -> None:
        """The request goes on on the event loop: keep the thread, give up its place."""
        with self.lock:
            self.counted = False
            term = self.term
        if term is not None:
            self.pool.park(term)

    def release(self) -> None:
        """Give the thread back once the calls submitted so far have run (from any thread)."""
        with self.lock:
            term, self.term = self.term, None
        if term is not None and term.release():
            self.pool.finished(term)
