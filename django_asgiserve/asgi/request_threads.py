"""Request threads: the one thread in which a request's sync code runs, on both of the handler's
paths, and the bounded pool they come from.

The rule, as under a threaded WSGI server: each request leases one thread (a :class:`Lease`) for
its whole life, and every piece of sync code run for it runs there, one call after another, with
no other request's code in between: ``request_started`` (so ``close_old_connections``), the
middleware, a sync view, the iteration of a sync streaming body (a ``FileResponse`` too), the
thread-sensitive ``sync_to_async`` calls of an async view or of an async streaming body (the
request's ``ThreadSensitiveContext`` runs them in the lease: :meth:`RequestThreads.context`), and
``close()`` with ``request_finished``. So a database connection is used, checked and closed in
one thread per request, and ``CONN_MAX_AGE`` (0, a number, ``None``) and ``CONN_HEALTH_CHECKS``
mean what they mean under ``WSGIHandler``. Once the lease is released the thread serves another
request, with its connection (one per thread at most, reused).

How the pool is shared: a lease of the sync fast path is *counted*: at most ``size`` counted
leases hold a thread at once, the others wait their turn in order, as requests wait for a
threaded WSGI server's threads. A sync streaming body holds its thread, and its place, until it
ends (a WSGI thread is held by its stream too); so does a sync view's ``FileResponse``. A request
that runs on the event loop does not hold a place: one on Django's path (an async view, or any
request when a middleware is not sync-capable), or a sync view's once its body turns out to be an
async iterator (server-sent events: :meth:`Lease.park`); its thread waits for the occasional
thread-sensitive call and ``close()``, as Django's handler keeps a thread per request, and such
threads are started as needed. Up to ``max_idle`` idle threads are kept; one past that
closes its database connections and ends.

A call submitted after its lease was released (by a task that outlived the request) gets a
thread of its own in a new lease; a task that outlives its request's context gets a new thread
from asgiref, as under Django: the lease is taken out of the context before asgiref's exit. This
relies on asgiref's internals (:mod:`django_asgiserve.upstream.asgiref`); without them the
thread-sensitive calls of Django's path get Django's own fresh thread.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import queue
import threading
from collections.abc import AsyncIterator

from asgiref.sync import ThreadSensitiveContext

from django_asgiserve.asgi.leases import Job, Lease, Term
from django_asgiserve.upstream import asgiref as asgiref_internals

#: Leases of the sync fast path holding a thread at once, per worker process: as many requests at
#: once as a threaded WSGI server with this many threads (each with its own database connection).
SIZE = 8
#: Idle threads kept per pool; more end once their request is over.
MAX_IDLE = 64
THREAD_PREFIX = "asgiserve-request"
_numbers = itertools.count(1)


class RequestThread(threading.Thread):
    """A pool thread: it runs the calls of the term it is bound to, then of the next one."""

    def __init__(self, pool: RequestThreads) -> None:
        super().__init__(name=f"{THREAD_PREFIX}-{next(_numbers)}", daemon=True)
        self.pool = pool
        self.inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()  # None: end

    def run(self) -> None:
        try:
            while (job := self.inbox.get()) is not None:
                self.call(job)
                del job
        finally:
            close_database_connections()

    def call(self, job: Job) -> None:
        # The term is over before its caller hears of its last call: a request that follows
        # finds this thread idle.
        if not job.future.set_running_or_notify_cancel():
            self.done(job.term)
            return
        try:
            result = job.fn(*job.args, **job.kwargs)
        except BaseException as exc:  # handed to the caller, as ThreadPoolExecutor hands it
            self.done(job.term)
            job.future.set_exception(exc)
            del exc  # no reference cycle through the traceback
        else:
            self.done(job.term)
            job.future.set_result(result)

    def done(self, term: Term) -> None:
        if term.call_done():
            self.pool.finished(term)


def close_database_connections() -> None:
    """A thread that ends closes its connections (they are thread-local: nobody else will)."""
    from django.db import connections

    connections.close_all()


class RequestThreads:
    """The request threads of one handler (see the module's docstring)."""

    def __init__(self, size: int = SIZE, max_idle: int = MAX_IDLE) -> None:
        self.size = size
        self.max_idle = max_idle
        self.lock = threading.Lock()
        self.holding = 0  # counted terms holding a thread
        self.waiting: collections.deque[Term] = collections.deque()  # counted, for a place
        self.idle: list[RequestThread] = []  # the last one in is the first out: warm threads

    def lease(self, *, counted: bool) -> Lease:
        return Lease(self, counted)

    def request(self, term: Term) -> None:
        """A thread for a new ``term``: an idle one, a new one, or, counted and at the bound,
        the first place that frees up."""
        with self.lock:
            if term.counted:
                if self.holding >= self.size:
                    self.waiting.append(term)
                    return
                self.holding += 1
            thread = self.idle.pop() if self.idle else None
        self.bind(term, thread)

    def park(self, term: Term) -> None:
        """``term`` no longer holds a place: the first waiting term takes it."""
        with self.lock:
            if not term.counted:
                return
            term.counted = False
            if term in self.waiting:  # parked before its turn: it needs no place to start
                self.waiting.remove(term)
                starting: Term | None = term
            else:
                self.holding -= 1
                starting = self.next_waiting()
            thread = self.idle.pop() if starting is not None and self.idle else None
        if starting is not None:
            self.bind(starting, thread)

    def finished(self, term: Term) -> None:
        """``term`` is over: its thread serves the first waiting term, waits idle or ends."""
        thread = term.thread
        assert isinstance(thread, RequestThread)  # a term ends after its calls, which had one
        with self.lock:
            if term.counted:
                self.holding -= 1
            following = self.next_waiting()
            if following is None and len(self.idle) < self.max_idle:
                self.idle.append(thread)
                return
        if following is None:
            thread.inbox.put(None)
        else:
            following.bind(thread)

    def next_waiting(self) -> Term | None:
        """The first counted term waiting for a place, now holding one (under the lock)."""
        if self.waiting and self.holding < self.size:
            self.holding += 1
            return self.waiting.popleft()
        return None

    def bind(self, term: Term, thread: RequestThread | None) -> None:
        if thread is None:
            thread = RequestThread(self)
            term.bind(thread)
            thread.start()
        else:
            term.bind(thread)

    @contextlib.asynccontextmanager
    async def context(self, lease: Lease) -> AsyncIterator[None]:
        """The request's ``ThreadSensitiveContext``, its thread-sensitive calls run in ``lease``
        (the caller releases it)."""
        context = ThreadSensitiveContext()
        async with context:
            executors = asgiref_internals.executors_of(context)
            if executors is None:
                yield  # an enclosing context decides the thread (a handler inside a handler)
                return
            executors[context] = lease
            try:
                yield
            finally:
                if executors.get(context) is lease:
                    del executors[context]
