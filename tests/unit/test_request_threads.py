"""Request threads on the async path (``asgi/request_threads.py``), in-process.

Each request still has a thread-sensitive thread of its own (two requests at once never share
one), but one request after another reuses it; a task that outlives its request and calls
thread-sensitive code gets a thread of its own, as under Django's handler.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.http import HttpResponse
from django.test import override_settings
from django.urls import path

from django_asgiserve.asgi.handler import SyncFastHandler
from django_asgiserve.asgi.request_threads import THREAD_PREFIX
from tests.helpers.asgi_calls import Connection
from tests.helpers.polling import DEADLINE

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
