"""Request threads (``asgi/request_threads.py``), in-process: on Django's async path, then the
pool on its own.

Each request has a thread of its own (two requests at once never share one), but one request
after another reuses it; a task that outlives its request and calls thread-sensitive code gets a
thread of its own, as under Django's handler. The pool holds at most ``size`` counted leases at
once, in order; a parked lease keeps its thread but not its place; a thread that ends closes its
database connections.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.http import HttpResponse
from django.test import override_settings
from django.urls import path

from django_asgiserve.asgi.handler import SyncFastHandler
from django_asgiserve.asgi.leases import Lease
from django_asgiserve.asgi.request_threads import THREAD_PREFIX, RequestThreads
from tests.helpers.asgi_calls import Connection
from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.postgres import Cluster

#: Views told to meet wait here until two requests are in their views at once.
MEETING = threading.Barrier(2, timeout=DEADLINE)
LEFTOVERS: list[asyncio.Task[str]] = []
#: Set by the test once the request that started a leftover task has ended.
REQUEST_ENDED: list[asyncio.Event] = []


def thread_name() -> str:
    return threading.current_thread().name


async def sensitive_thread(request: Any) -> HttpResponse:
    name = await sync_to_async(thread_name)()
    if "meet" in request.GET:
        await sync_to_async(MEETING.wait)()  # in the request's thread: both are held at once
    if "leave" in request.GET:

        async def later() -> str:
            await REQUEST_ENDED[0].wait()
            return await sync_to_async(thread_name)()

        LEFTOVERS.append(asyncio.ensure_future(later()))
    return HttpResponse(name)


urlpatterns = [path("thread/", sensitive_thread)]


@pytest.fixture
def handler() -> Iterator[SyncFastHandler]:
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=[], DEBUG=False):
        yield SyncFastHandler()


async def get(handler: SyncFastHandler, url: str) -> str:
    connection = Connection(handler, url)
    connection.incoming.put_nowait({"type": "http.request", "body": b""})
    start, body = await connection.finished()
    assert start["status"] == 200
    return body["body"].decode()


def test_one_request_after_another_reuses_its_thread(handler):
    async def requests() -> list[str]:
        return [await get(handler, "/thread/") for _ in range(3)]

    first, *others = asyncio.run(requests())
    assert first.startswith(THREAD_PREFIX)
    assert others == [first, first]


def test_requests_at_once_each_have_their_own_thread(handler):
    async def requests() -> list[str]:
        return list(await asyncio.gather(*(get(handler, "/thread/?meet") for _ in range(2))))

    one, other = asyncio.run(requests())
    assert one != other
    assert one.startswith(THREAD_PREFIX) and other.startswith(THREAD_PREFIX)


def test_a_task_that_outlives_its_request_gets_a_thread_of_its_own(handler):
    async def requests() -> tuple[str, str, str]:
        REQUEST_ENDED[:] = [asyncio.Event()]
        served = await get(handler, "/thread/?leave")
        REQUEST_ENDED[0].set()
        leftover = await asyncio.wait_for(LEFTOVERS.pop(), DEADLINE)
        return served, leftover, await get(handler, "/thread/")

    served, leftover, next_request = asyncio.run(requests())
    assert leftover != served and not leftover.startswith(THREAD_PREFIX)
    assert next_request == served


# -- the pool, on its own -----------------------------------------------------------------------


def run(lease: Lease, fn: Any, *args: Any) -> Any:
    return lease.submit(fn, *args).result(DEADLINE)


def test_a_leases_calls_run_in_one_thread_in_order() -> None:
    pool = RequestThreads(size=2)
    lease = pool.lease(counted=True)
    order: list[int] = []
    futures = [lease.submit(lambda n=n: order.append(n) or thread_name()) for n in range(5)]
    names = {future.result(DEADLINE) for future in futures}
    lease.release()
    assert order == list(range(5))
    assert len(names) == 1 and names.pop().startswith(THREAD_PREFIX)


def test_counted_leases_past_the_bound_wait_their_turn_in_order() -> None:
    pool = RequestThreads(size=2)
    gates = [threading.Event() for _ in range(2)]
    holding = [pool.lease(counted=True) for _ in range(2)]
    held = [lease.submit(gate.wait, DEADLINE) for lease, gate in zip(holding, gates, strict=True)]
    waiting = [pool.lease(counted=True) for _ in range(2)]
    later = [lease.submit(thread_name) for lease in waiting]
    assert pool.holding == 2 and len(pool.waiting) == 2  # no thread for the last two yet
    for lease in holding:
        lease.release()
    gates[0].set()  # the first place frees up: the first waiting lease takes it, not the second
    assert held[0].result(DEADLINE) is True
    assert later[0].result(DEADLINE).startswith(THREAD_PREFIX)
    assert not later[1].done() and len(pool.waiting) == 1
    gates[1].set()
    assert later[1].result(DEADLINE).startswith(THREAD_PREFIX)
    for lease in waiting:
        lease.release()


def test_a_parked_lease_keeps_its_thread_and_gives_up_its_place() -> None:
    pool = RequestThreads(size=1)
    streaming = pool.lease(counted=True)
    first = run(streaming, thread_name)
    streaming.park()  # its body goes on on the event loop
    other = pool.lease(counted=True)
    assert run(other, thread_name) != first  # served meanwhile, in another thread
    other.release()
    assert run(streaming, thread_name) == first  # its close() comes back to its own thread
    streaming.release()


def test_requests_on_the_event_loop_never_wait_for_a_place() -> None:
    pool = RequestThreads(size=1)
    gate = threading.Event()
    busy = pool.lease(counted=True)
    held = busy.submit(gate.wait, DEADLINE)
    on_the_loop = pool.lease(counted=False)
    assert run(on_the_loop, thread_name).startswith(THREAD_PREFIX)
    on_the_loop.release()
    gate.set()
    assert held.result(DEADLINE) is True
    busy.release()


def test_a_released_thread_serves_the_next_request_after_the_calls_before_its_release() -> None:
    pool = RequestThreads(size=1)
    gate = threading.Event()
    first = pool.lease(counted=True)
    first_thread = first.submit(thread_name)
    last_call = first.submit(gate.wait, DEADLINE)
    first.release()
    second = pool.lease(counted=True)
    second_thread = second.submit(thread_name)
    assert not second_thread.done()  # waits for the place the first still holds
    gate.set()
    assert last_call.result(DEADLINE) is True
    assert second_thread.result(DEADLINE) == first_thread.result(DEADLINE)
    second.release()


def test_a_call_after_the_release_gets_a_thread_of_its_own() -> None:
    pool = RequestThreads(size=1)
    lease = pool.lease(counted=True)
    run(lease, thread_name)
    lease.release()
    assert run(lease, thread_name).startswith(THREAD_PREFIX)  # a new term, not a lost call
    lease.release()


def test_an_exception_goes_to_the_caller_and_the_thread_goes_on() -> None:
    pool = RequestThreads(size=1)
    lease = pool.lease(counted=True)
    with pytest.raises(ZeroDivisionError):
        run(lease, lambda: 1 / 0)
    assert run(lease, thread_name).startswith(THREAD_PREFIX)
    lease.release()


@pytest.fixture
def pg_alias(postgres: Cluster, django_db_blocker: Any) -> Iterator[tuple[str, Cluster, str]]:
    """An alias of ``connections`` on a database of the test cluster: (alias, cluster, name)."""
    name = postgres.create_database(f"threads_{next(_databases)}")
    alias = f"pg_{name}"
    databases = {**connections.settings, alias: postgres.django_settings(name)}
    connections.settings[alias] = connections.configure_settings(databases)[alias]
    try:
        with django_db_blocker.unblock():
            yield alias, postgres, name
    finally:
        del connections.settings[alias]


_databases = itertools.count(1)


def test_an_idle_thread_keeps_its_connection_one_past_the_limit_closes_it(pg_alias) -> None:
    alias, cluster, name = pg_alias

    def connect() -> tuple[threading.Thread, int]:
        connection = connections[alias]
        connection.ensure_connection()
        return threading.current_thread(), connection.connection.info.backend_pid

    pool = RequestThreads(size=2, max_idle=1)
    first, second = pool.lease(counted=True), pool.lease(counted=True)
    (first_thread, _), (second_thread, kept) = run(first, connect), run(second, connect)
    assert first_thread is not second_thread and len(cluster.backends(name)) == 2
    second.release()  # idle, with its connection
    first.release()  # one idle thread is the limit: this one ends
    first_thread.join(DEADLINE)
    assert not first_thread.is_alive() and second_thread.is_alive()
    wait_for(lambda: cluster.backends(name) == [kept], what="the ended thread's to be closed")
