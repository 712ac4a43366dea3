"""The merged async chain (``asgi/async_chain.py``) against Django's own, in-process.

Each request goes through Django's ``ASGIHandler`` and through ``SyncFastHandler`` (whose async
path has the merged chain) with the same middleware instances' code: the hooks that ran, in
which order and on which thread, and the response must be the same, for every way a hook can
answer (pass on, respond, raise) at every place. What differs is the number of hops to the
request's thread, counted by the executor of the request's ``ThreadSensitiveContext``.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpResponse
from django.template.response import SimpleTemplateResponse
from django.test import override_settings
from django.urls import path
from django.utils.deprecation import MiddlewareMixin

from django_asgiserve.asgi.async_chain import MergedChain
from django_asgiserve.asgi.handler import SyncFastHandler
from tests.helpers.asgi_calls import Connection
from tests.helpers.polling import DEADLINE, wait_for

REQUEST_THREAD = "request-thread"
#: (hook, thread kind) in the order they ran, for the request being served.
EVENTS: list[tuple[str, str]] = []
#: A hook told to "block" waits for this.
RELEASE = threading.Event()
ENTERED = threading.Event()

pytestmark = pytest.mark.skipif(
    "executor" not in inspect.signature(ThreadSensitiveContext).parameters,
    reason="counting hops needs asgiref's ThreadSensitiveContext(executor=...)",
)


def thread_kind() -> str:
    name = threading.current_thread().name
    if threading.current_thread() is threading.main_thread():
        return "loop"  # asyncio.run() runs the loop in the test's thread
    return "request" if name.startswith(REQUEST_THREAD) else "other"


def act(request: Any, hook: str, answer: Any = None) -> Any:
    """Record ``hook`` and do what the query string tells it: respond, raise, block or pass."""
    EVENTS.append((hook, thread_kind()))
    action = request.GET.get(hook)
    if action == "respond":
        return HttpResponse(f"from {hook}")
    if action == "raise":
        raise ValueError(f"raised by {hook}")
    if action == "block":
        ENTERED.set()
        RELEASE.wait(DEADLINE)
    return answer


class Recorder(MiddlewareMixin):
    name = ""

    def process_request(self, request):
        return act(request, f"{self.name}.process_request")

    def process_view(self, request, view, args, kwargs):
        return act(request, f"{self.name}.process_view")

    def process_exception(self, request, exc):
        return act(request, f"{self.name}.process_exception")

    def process_template_response(self, request, response):
        return act(request, f"{self.name}.process_template_response", response)

    def process_response(self, request, response):
        response = act(request, f"{self.name}.process_response", response)
        response["X-Trail"] = response.get("X-Trail", "") + self.name
        return response


class A(Recorder):
    name = "A"


class B(Recorder):
    name = "B"


class C(Recorder):
    name = "C"


class AsyncViewHook(MiddlewareMixin):
    """Only an async ``process_view``: awaited on the loop, between two runs of sync ones."""

    async def process_view(self, request, view, args, kwargs):
        return act(request, "D.process_view")


class OwnCall(MiddlewareMixin):
    def __call__(self, request):
        return super().__call__(request)


def async_only(get_response):
    async def middleware(request):
        return await get_response(request)

    return middleware


async_only.sync_capable = False
async_only.async_capable = True


class Template:
    def render(self, context=None, request=None):
        return "rendered"


async def view(request):
    act(request, "view")
    if request.GET.get("view") == "template":
        return SimpleTemplateResponse(Template())
    return HttpResponse("from view")


urlpatterns = [path("view/", view)]

HERE = __name__
MIDDLEWARE = [f"{HERE}.A", f"{HERE}.B", f"{HERE}.AsyncViewHook", f"{HERE}.C"]


class Counting(ThreadPoolExecutor):
    """A real executor that counts the calls handed to it."""

    def __init__(self, workers: int, prefix: str) -> None:
        super().__init__(max_workers=workers, thread_name_prefix=prefix)
        self.calls = 0

    def submit(self, fn, /, *args, **kwargs):
        self.calls += 1
        return super().submit(fn, *args, **kwargs)


class Served:
    def __init__(self) -> None:
        self.status = 0
        self.body = b""
        self.headers: dict[bytes, bytes] = {}
        self.events: list[tuple[str, str]] = []
        self.request_hops = 0
        self.other_hops = 0


def serve(handler: ASGIHandler, url: str) -> Served:
    """One request, its hops counted: the request thread's and the loop's default executor's."""
    served = Served()
    EVENTS.clear()

    async def request() -> None:
        other = Counting(4, "other")
        asyncio.get_running_loop().set_default_executor(other)
        request_thread = Counting(1, REQUEST_THREAD)
        # ASGIHandler's own ThreadSensitiveContext is inside this one, so it uses this executor.
        async with ThreadSensitiveContext(executor=request_thread):
            connection = Connection(handler, url)
            connection.incoming.put_nowait({"type": "http.request", "body": b""})
            start, body = await connection.finished()
        request_thread.shutdown()
        served.status = start["status"]
        served.headers = dict(start["headers"])
        served.body = body["body"]
        served.request_hops = request_thread.calls
        served.other_hops = other.calls

    asyncio.run(request())
    served.events = list(EVENTS)
    return served


@pytest.fixture
def handlers() -> Iterator[tuple[ASGIHandler, SyncFastHandler]]:
    with override_settings(ROOT_URLCONF=HERE, MIDDLEWARE=MIDDLEWARE, DEBUG=False):
        merged = SyncFastHandler()
        assert isinstance(merged._middleware_chain, MergedChain)
        yield ASGIHandler(), merged


PASS_ON = [
    ("A.process_request", "request"),
    ("B.process_request", "request"),
    ("C.process_request", "request"),
    ("A.process_view", "request"),
    ("B.process_view", "request"),
    ("D.process_view", "loop"),
    ("C.process_view", "request"),
    ("view", "loop"),
    ("C.process_response", "request"),
    ("B.process_response", "request"),
    ("A.process_response", "request"),
]


def test_an_async_view_runs_on_the_loop_and_hooks_in_the_request_thread(handlers):
    django, merged = handlers
    theirs, ours = serve(django, "/view/"), serve(merged, "/view/")
    assert ours.events == theirs.events == PASS_ON
    assert (ours.status, ours.body, ours.headers[b"X-Trail"]) == (200, b"from view", b"CBA")
    assert (theirs.status, theirs.body, theirs.headers) == (ours.status, ours.body, ours.headers)
    # request_started, the process_request hooks, A and B's process_view, C's, the
    # process_response hooks, close(): Django's chain takes one hop per hook.
    assert ours.request_hops == 6
    assert theirs.request_hops == 11


SCENARIOS = [
    "B.process_request=respond",
    "A.process_request=respond",
    "C.process_request=respond",
    "B.process_request=raise",
    "A.process_request=raise",
    "C.process_request=raise",
    "C.process_response=raise",
    "A.process_response=raise",
    "B.process_response=raise&A.process_response=raise",
    "B.process_view=respond",
    "D.process_view=respond",
    "C.process_view=raise",
    "A.process_view=raise&B.process_exception=respond",
    "view=raise",
    "view=raise&B.process_exception=respond",
    "view=raise&C.process_exception=raise",
    "view=template",
    "view=template&B.process_template_response=raise",
    "view=template&B.process_template_response=raise&A.process_exception=respond",
    "B.process_request=raise&A.process_response=raise",
]


@pytest.mark.parametrize("query", SCENARIOS)
def test_every_answer_of_every_hook_is_seen_as_under_django(handlers, query):
    django, merged = handlers
    url = f"/view/?{query}"
    theirs, ours = serve(django, url), serve(merged, url)
    assert ours.events == theirs.events
    assert (ours.status, ours.body, ours.headers) == (theirs.status, theirs.body, theirs.headers)
    # Converted exceptions are converted in another thread, as Django converts them.
    assert ours.other_hops == theirs.other_hops
    assert ours.request_hops <= theirs.request_hops


def test_a_path_that_does_not_resolve_gets_djangos_404(handlers):
    django, merged = handlers
    theirs, ours = serve(django, "/nowhere/"), serve(merged, "/nowhere/")
    assert ours.status == theirs.status == 404
    assert ours.events == theirs.events
    assert ours.body == theirs.body
    assert ours.request_hops == 4  # started, requests, responses, close


def test_a_cancelled_run_starts_no_further_hook(handlers):
    """A client that goes away while ``A.process_request`` runs: as under Django, no other hook
    runs (the thread finishes A's), and no response is sent."""

    async def request(handler: ASGIHandler) -> None:
        request_thread = Counting(1, REQUEST_THREAD)
        async with ThreadSensitiveContext(executor=request_thread):
            connection = Connection(handler, "/view/?A.process_request=block")
            connection.incoming.put_nowait({"type": "http.request", "body": b""})
            await asyncio.to_thread(wait_for, ENTERED.is_set, what="A's hook to start")
            hops = request_thread.calls
            connection.incoming.put_nowait({"type": "http.disconnect"})
            # The cancelled request sends request_finished: a hop queued behind A's.
            await asyncio.to_thread(wait_for, lambda: request_thread.calls > hops)
            RELEASE.set()
            assert await connection.finished() == []  # no response for a client that went
        request_thread.shutdown()  # waits for the thread: every hook it had started ran

    for handler in handlers:
        EVENTS.clear()
        ENTERED.clear()
        RELEASE.clear()
        asyncio.run(request(handler))
        assert EVENTS == [("A.process_request", "request")], handler


@pytest.mark.parametrize(
    "middleware",
    [
        [f"{HERE}.A", f"{HERE}.OwnCall"],
        [f"{HERE}.A", f"{HERE}.async_only", f"{HERE}.B"],
        [],
    ],
    ids=["own-call", "async-only", "none"],
)
def test_other_middleware_keeps_djangos_chain(middleware):
    with override_settings(ROOT_URLCONF=HERE, MIDDLEWARE=middleware, DEBUG=False):
        handler = SyncFastHandler()
        assert not isinstance(handler._middleware_chain, MergedChain)
        ours, theirs = serve(handler, "/view/"), serve(ASGIHandler(), "/view/")
    assert ours.events == theirs.events
    assert ours.request_hops == theirs.request_hops
