"""``SyncFastHandler`` in-process: which thread runs what, through asgiref's communicator.

The server tests (``test_sync_path``) prove what users see; these pin the thread semantics
that are hard to observe from outside: ``thread_sensitive`` code called from a sync view through
``async_to_sync`` comes back to the view's own pool thread, and async views never run in the pool.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import warnings

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.core import signals
from django.http import FileResponse, HttpResponse, StreamingHttpResponse
from django.test import override_settings
from django.urls import path

from django_asgiserve.asgi.handler import SyncFastHandler
from tests.helpers.asgi_calls import Connection, scope_for
from tests.helpers.polling import DEADLINE

POOL_THREAD = "asgiserve-request"


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
        scope = scope_for(url)
        communicator = ApplicationCommunicator(handler, scope)
        await communicator.send_input({"type": "http.request", "body": b""})
        start = await communicator.receive_output(10)
        parts = []
        while (body := await communicator.receive_output(10)).get("more_body"):
            parts.append(body["body"])
        await communicator.wait(10)
        return start["status"], b"".join([*parts, body.get("body", b"")]).decode()

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


# -- streaming bodies: the request's thread -----------------------------------------------------

#: Request tag -> the threads its signals, its body and its calls ran in, in order.
SEEN: dict[str, list[tuple[str, str]]] = {}
#: Opened by a test to let a gated body end.
GATES: dict[str, threading.Event] = {}
ASYNC_GATES: dict[str, asyncio.Event] = {}


def seen(tag: str, what: str) -> None:
    SEEN.setdefault(tag, []).append((what, current()))


def on_started(sender, scope=None, **kwargs) -> None:
    query = scope["query_string"].decode()
    tag = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("tag", "?")
    LOCAL.tag = tag
    seen(tag, "request_started")


def on_finished(sender, **kwargs) -> None:
    seen(getattr(LOCAL, "tag", "?"), "request_finished")


LOCAL = threading.local()


def sync_stream(request):
    tag = request.GET["tag"]

    def parts():
        for n in range(3):
            seen(tag, f"part {n}")
            if n == 1 and tag in GATES:
                GATES[tag].wait(DEADLINE)
            yield f"part {n}\n"

    return StreamingHttpResponse(parts())


def sync_endless(request):
    return StreamingHttpResponse(itertools.repeat(b"x" * 1000))


class Reads:
    """A file whose reads say where they ran."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.left = 3

    def read(self, size: int = -1) -> bytes:
        seen(self.tag, "read")
        self.left -= 1
        return b"x" * 10 if self.left >= 0 else b""


def file(request):
    return FileResponse(Reads(request.GET["tag"]))


def async_stream(request):
    tag = request.GET["tag"]

    async def parts():
        for n in range(3):
            await sync_to_async(seen)(tag, f"call {n}")
            if n == 1 and tag in ASYNC_GATES:
                await ASYNC_GATES[tag].wait()
            yield f"part {n}\n"

    return StreamingHttpResponse(parts())


urlpatterns += [
    path("sync-stream/", sync_stream),
    path("sync-endless/", sync_endless),
    path("file/", file),
    path("async-stream/", async_stream),
]


@pytest.fixture
def signals_seen():
    signals.request_started.connect(on_started)
    signals.request_finished.connect(on_finished)
    SEEN.clear()
    yield SEEN
    signals.request_started.disconnect(on_started)
    signals.request_finished.disconnect(on_finished)


@pytest.mark.parametrize(
    ("url", "parts"),
    [("/sync-stream/", ["part 0", "part 1", "part 2"]), ("/file/", ["read"] * 4)],
    ids=["generator", "FileResponse"],
)
def test_a_sync_body_is_iterated_in_the_requests_thread_part_by_part(
    handler, signals_seen, url, parts
):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, _ = get(handler, f"{url}?tag=s")
    assert status == 200
    assert not [w for w in caught if "consume synchronous iterators" in str(w.message)]
    events = [what for what, _ in signals_seen["s"]]
    assert events == ["request_started", *parts, "request_finished"]
    threads = {thread for _, thread in signals_seen["s"]}
    assert len(threads) == 1 and threads.pop().startswith(POOL_THREAD)


def test_an_async_bodys_calls_come_back_to_the_requests_thread(handler, signals_seen):
    status, _ = get(handler, "/async-stream/?tag=a")
    assert status == 200
    events = [what for what, _ in signals_seen["a"]]
    assert events == ["request_started", "call 0", "call 1", "call 2", "request_finished"]
    assert len({thread for _, thread in signals_seen["a"]}) == 1


async def request(app, url: str) -> tuple[int, bytes]:
    connection = Connection(app, url)
    connection.incoming.put_nowait({"type": "http.request", "body": b""})
    start, *bodies = await connection.finished()
    return start["status"], b"".join(m.get("body", b"") for m in bodies)


def test_a_sync_stream_holds_its_place_an_async_one_does_not(signals_seen):
    """With one place: a sync request waits for a sync stream to end, as a WSGI thread is held
    by its stream; it is served while an async stream (server-sent events) stays open."""
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=[]):
        handler = SyncFastHandler(threads=1)

        async def sync_stream_first() -> None:
            GATES["held"] = threading.Event()
            stream = asyncio.create_task(request(handler, "/sync-stream/?tag=held"))
            await wait_until(lambda: len(SEEN.get("held", [])) >= 3)  # in its second part
            plain = asyncio.create_task(request(handler, "/plain/?tag=p1"))
            await wait_until(lambda: handler.request_threads.waiting)
            assert not plain.done()
            GATES["held"].set()
            assert (await stream)[0] == 200 and (await plain) == (200, b"plain")

        async def async_stream_first() -> None:
            ASYNC_GATES["open"] = asyncio.Event()
            stream = asyncio.create_task(request(handler, "/async-stream/?tag=open"))
            await wait_until(lambda: len(SEEN.get("open", [])) >= 3)
            assert await request(handler, "/plain/?tag=p2") == (200, b"plain")
            assert not stream.done()
            ASYNC_GATES["open"].set()
            assert (await stream)[0] == 200

        asyncio.run(sync_stream_first())
        asyncio.run(async_stream_first())


async def wait_until(condition) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_sync_body_goes_out_part_by_part_as_it_is_made(signals_seen):
    """A part is sent once made, not when the body ends (a slow generator, server-sent events
    written as a sync generator); a client that goes stops it at the next part, and the
    response is closed in the request's thread."""
    with override_settings(ROOT_URLCONF=__name__, MIDDLEWARE=[]):
        handler = SyncFastHandler()

        async def live() -> None:
            GATES["live"] = threading.Event()
            connection = Connection(handler, "/sync-stream/?tag=live")
            connection.incoming.put_nowait({"type": "http.request", "body": b""})
            await wait_until(lambda: any(m.get("body") == b"part 0\n" for m in connection.sent))
            GATES["live"].set()  # part 1 may be made now
            await connection.finished()

        async def left() -> None:  # an endless body: only the client's going ends it
            connection = Connection(handler, "/sync-endless/?tag=left")
            connection.incoming.put_nowait({"type": "http.request", "body": b""})
            await wait_until(lambda: len(connection.sent) > 2)
            connection.incoming.put_nowait({"type": "http.disconnect"})
            await connection.finished()

        asyncio.run(live())
        asyncio.run(left())
    assert [what for what, _ in SEEN["live"]][-1] == "request_finished"
    assert [what for what, _ in SEEN["left"]] == ["request_started", "request_finished"]
    assert len({thread for _, thread in SEEN["left"]}) == 1
