"""The sync fast path: Django's ``ASGIHandler`` that serves sync views in one thread hop.

Django's own handler runs its middleware chain in async mode, so every sync middleware method,
the sync view, each signal and the response's ``close()`` is a separate ``sync_to_async`` hop, in
two fresh threads per request (the request's ``ThreadSensitiveContext``). :class:`SyncFastHandler`
decides per request: when every middleware is sync-capable and the URL resolves (with the root
URLconf) to a sync view, it reads the body on the event loop as Django does,
then runs what ``WSGIHandler`` runs (``request_started``, the request, the sync middleware chain
built by ``load_middleware(is_async=False)``, ``request_finished``) in ONE hop to a bounded
thread pool the handler owns, awaited in the request's own task (one more task watches for a
disconnect, see :meth:`SyncFastHandler.handle_sync`), and sends the response from the event loop.
Anything else (an async view, an async-only middleware, a URL it cannot resolve) goes to Django's
own async path, so async views still run on the event loop; that path's middleware chain takes one
hop per run of sync hooks when every middleware is a plain ``MiddlewareMixin``
(``async_chain.py``), and each request there leases its thread-sensitive thread from a pool
instead of starting one (``request_threads.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import tempfile
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import django
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpResponseBase
from django.urls import URLResolver, get_resolver, set_script_prefix
from django.utils.module_loading import import_string

from django_asgiserve.asgi import async_chain, file_stream
from django_asgiserve.asgi.request_threads import RequestThreads

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Threads that run sync requests, per worker process: as many requests at once as a threaded
#: WSGI server with this many threads (each with its own database connection).
SYNC_THREADS = 8
#: Distinct paths whose view kind (sync or not) is remembered.
RESOLVE_CACHE_SIZE = 4096


def get_asgi_application() -> SyncFastHandler:
    """What ``django.core.asgi.get_asgi_application`` returns in a worker with the fast path on."""
    django.setup(set_prefix=False)
    return SyncFastHandler()


def middleware_all_sync_capable() -> bool:
    """Whether every entry of ``MIDDLEWARE`` can run in a sync chain without an adapter."""
    return all(getattr(import_string(path), "sync_capable", True) for path in settings.MIDDLEWARE)


class SyncChain(ASGIHandler):  # type: ignore[misc]
    """Django's ASGI handler with its middleware loaded in sync mode, as ``WSGIHandler`` loads it.

    It keeps ``ASGIHandler``'s requests, response handling and last-chance error handling; only
    :class:`SyncFastHandler` calls it, from a pool thread.
    """

    def __init__(self) -> None:  # not ASGIHandler's, which loads the async chain
        self.load_middleware(is_async=False)


class SyncFastHandler(ASGIHandler):  # type: ignore[misc]
    """``ASGIHandler`` with the sync fast path (see the module's docstring)."""

    def __init__(self, threads: int = SYNC_THREADS) -> None:
        super().__init__()
        self.sync_chain = SyncChain() if middleware_all_sync_capable() else None
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="asgiserve-sync")
        # One hop per request: asgiref's, so that context variables reach the thread and
        # async_to_sync() inside a view runs its coroutine on this worker's event loop.
        self.respond_in_thread = sync_to_async(
            self.respond, thread_sensitive=False, executor=self.pool
        )
        self.close_in_thread = sync_to_async(
            self.close_response, thread_sensitive=False, executor=self.pool
        )
        self.request_threads = RequestThreads()

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async)
        if is_async:
            async_chain.merge(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.serves_sync(scope):
            await self.call_django(scope, receive, send)
            return
        await self.handle_sync(scope, receive, send)

    async def call_django(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``ASGIHandler.__call__``, with the request's thread leased from a pool
        (``request_threads.py``)."""
        if scope["type"] != "http" or not hasattr(self, "request_threads"):
            await super().__call__(scope, receive, send)  # Django's error for other scopes
            return
        async with self.request_threads.context():
            await self.handle(scope, receive, send)

    async def run_get_response(self, request: Any) -> HttpResponseBase:
        """Django's async path; a ``FileResponse`` it gives (whitenoise's) is read in a thread
        as it is sent (see :mod:`file_stream`)."""
        return file_stream.read_in_thread(await super().run_get_response(request))

    def serves_sync(self, scope: Scope) -> bool:
        """Whether the request's path resolves (with the root URLconf) to a sync view.

        A middleware that sets ``request.urlconf`` can still route it elsewhere: the sync chain
        then serves whatever it resolves, an async view as ``WSGIHandler`` would (awaited on this
        worker's event loop through ``async_to_sync``).
        """
        # Not set up by a subclass that skips __init__ (staticfiles' handler), or a request class
        # routing with its own URLconf: only Django's own path can tell what the view is.
        if getattr(self, "sync_chain", None) is None or hasattr(self.request_class, "urlconf"):
            return False
        # The path_info ASGIRequest will compute.
        path = scope["path"].removeprefix(get_script_prefix(scope))
        return resolves_to_sync(get_resolver(), path)

    async def handle_sync(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Django's request cycle with the sync work in one hop, awaited in the request's own
        task, raced against a disconnect by one watcher task (Django's handler runs the request
        in a second task and waits for either: two tasks, and the loop rounds they cost).

        As under ``ASGIHandler.handle``: a client gone before the response is ready gets none
        (the view's thread cannot be stopped, so the response is closed, unsent), a message other
        than a disconnect after the body raises, and a stream stops when its client goes.
        """
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        hop = Hop()
        listening = asyncio.create_task(self.listen_for_disconnect(receive))
        try:
            try:
                response = await self.respond_in_thread(scope, body_file, hop)
            except asyncio.CancelledError:
                listening.cancel()
                # The thread cannot be stopped: whichever of us is last closes what it returns.
                if (abandoned := hop.abandon()) is not None:
                    self.pool.submit(abandoned.close)
                raise
            if listening.done():  # the client went while the view ran
                if response.streaming:
                    await self.close_in_thread(response)
                with contextlib.suppress(RequestAborted):
                    listening.result()  # an AssertionError (a message after the body) goes up
            elif response.streaming:
                await self.stream(response, listening, send)
            else:
                listening.cancel()
                try:
                    await self.send_response(response, send)
                finally:
                    with contextlib.suppress(asyncio.CancelledError, RequestAborted):
                        await listening
        finally:
            body_file.close()

    async def stream(
        self, response: HttpResponseBase, listening: asyncio.Task[None], send: Send
    ) -> None:
        """Send a streaming response until it ends or the client goes (``listening`` ends),
        then close it in a pool thread (``request_finished`` runs there)."""
        sending = asyncio.create_task(self.send_response(response, send))
        try:
            await asyncio.wait((listening, sending), return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when this task is cancelled: neither may outlive it
            try:
                for task in (listening, sending):
                    if not task.done():
                        task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, RequestAborted):
                        await task  # an AssertionError (a message after the body) goes up
            finally:
                await self.close_in_thread(response)

    def respond(
        self, scope: Scope, body_file: tempfile.SpooledTemporaryFile[bytes], hop: Hop
    ) -> HttpResponseBase:
        """What ``WSGIHandler.__call__`` does, in one pool thread: signals, request, response.

        A complete response is closed here (sending ``request_finished`` in this thread) before
        its bytes go out; a streaming one is closed after the stream, in a pool thread.
        """
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            response = error_response
        else:
            assert self.sync_chain is not None
            response = self.sync_chain.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if not response.streaming:
            response.close()
        elif hop.hand_over(response):
            response.close()  # nobody waits for the stream any more
        return response

    @staticmethod
    def close_response(response: HttpResponseBase) -> None:
        response.close()


class Hop:
    """One request's trip to the pool, as both sides see it: a streaming response whose
    request's task was cancelled while the thread made it is closed by whichever side is
    last (the thread when it finishes after the cancellation, the task otherwise)."""

    __slots__ = ("abandoned", "lock", "response")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.abandoned = False
        self.response: HttpResponseBase | None = None

    def hand_over(self, response: HttpResponseBase) -> bool:
        """In the thread: keep ``response`` for the task; True if it was abandoned already."""
        with self.lock:
            self.response = response
            return self.abandoned

    def abandon(self) -> HttpResponseBase | None:
        """In the cancelled task: the streaming response the thread made already, if any."""
        with self.lock:
            self.abandoned = True
            return self.response


@functools.lru_cache(maxsize=RESOLVE_CACHE_SIZE)
def resolves_to_sync(resolver: URLResolver, path: str) -> bool:
    try:
        match = resolver.resolve(path)
    except Exception:
        # A 404 here may be a view in a URLconf a middleware or the request class sets: only
        # Django's own path can tell, and it serves the 404 page (or the error) otherwise.
        return False
    return not iscoroutinefunction(match.func)


def install_if_enabled() -> None:
    """Make ``django.core.asgi.get_asgi_application`` build a :class:`SyncFastHandler` in this
    process when ``ASGISERVE["SYNC_FAST_PATH"]`` is on, so that an ``ASGI_APPLICATION`` calling
    it (alone or inside a router) gets the fast path. Called before the project's module loads
    (in the command's process, whose first workers are forks of it, and in each worker).
    """
    import django.core.asgi

    from django_asgiserve import settings as serve_settings

    # The raw value: a broken ASGISERVE is reported by the command's own validation.
    if serve_settings.raw().get("SYNC_FAST_PATH", True) is True:
        django.core.asgi.get_asgi_application = get_asgi_application
