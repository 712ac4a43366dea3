"""``SyncFastHandler`` in-process: which thread runs what, through asgiref's communicator.

The server tests (``test_sync_path``) prove what users see; these pin the thread semantics
that are hard to observe from outside: ``thread_sensitive`` code called from a sync view through
``async_to_sync`` comes back to the view's own pool thread, and async views never run in the pool.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.http import HttpResponse
from django.test import override_settings
from django.urls import path

from django_asgiserve.asgi.handler import SyncFastHandler

POOL_THREAD = "asgiserve-sync"


def current() -> str:
    return threading.current_thread().name


def nested(request):
    async def hop_back() -> str:
        return await sync_to_async(current, thread_sensitive=True)()

    return HttpResponse(f"{current()} {async_to_sync(hop_back)()}")


async def async_view(request):
    return HttpResponse(current())


def plain(request):
    return HttpResponse("plain")


urlpatterns = [path("nested/", nested), path("async/", async_view), path("plain/", plain)]


def get(handler: SyncFastHandler, url: str) -> tuple[int, str]:
    async def request() -> tuple[int, str]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": url,
            "raw_path": url.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        communicator = ApplicationCommunicator(handler, scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(10)
        body = await communicator.receive_output(10)
        await communicator.wait(10)
        return start["status"], body["body"].decode()

    return asyncio.run(request())


@pytest.fixture
def handler():
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=[]):
        yield SyncFastHandler()


def test_thread_sensitive_code_comes_back_to_the_views_thread(handler):
    status, body = get(handler, "/nested/")
    view_thread, sensitive_thread = body.split()
    assert status == 200
    assert view_thread.startswith(POOL_THREAD)
    assert sensitive_thread == view_thread


def test_async_views_run_on_the_event_loop(handler):
    status, body = get(handler, "/async/")
    assert status == 200
    assert body == "MainThread"


def test_a_complete_response_costs_one_task_the_disconnect_watcher(handler):
    """The hop is awaited in the request's own task, raced against a disconnect by one watcher
    (Django's handler, and this one before, ran three: tasks and their loop rounds are most of
    what a sync request costs the event loop)."""
    created: list[object] = []
    sent: list[dict] = []

    async def request() -> None:
        loop = asyncio.get_running_loop()

        def counting_factory(loop, coro, **kwargs):
            created.append(coro.__qualname__)
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(counting_factory)
        messages = [{"type": "http.request", "body": b""}]

        async def receive() -> dict:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # a client that stays
            raise AssertionError("unreachable")

        async def send(message: dict) -> None:
            sent.append(message)

        await handler(
            {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "GET",
                "scheme": "http",
                "path": "/plain/",
                "raw_path": b"/plain/",
                "query_string": b"",
                "root_path": "",
                "headers": [(b"host", b"127.0.0.1")],
                "client": ("127.0.0.1", 1),
                "server": ("127.0.0.1", 80),
            },
            receive,
            send,
        )
        loop.set_task_factory(None)  # asyncio.run's own clean-up tasks are not the request's

    asyncio.run(request())
    assert sent[0]["status"] == 200
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"plain"
    assert created == ["ASGIHandler.listen_for_disconnect"]
