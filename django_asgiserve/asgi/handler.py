"""The sync fast path: Django's ``ASGIHandler`` that serves sync views in one thread hop.

Django's own handler runs its middleware chain in async mode, so every sync middleware method,
the sync view, each signal and the response's ``close()`` is a separate ``sync_to_async`` hop, in
two fresh threads per request (the request's ``ThreadSensitiveContext``). :class:`SyncFastHandler`
decides per request: when every middleware is sync-capable and the URL resolves (with the root
URLconf) to a sync view, it reads the body on the event loop as Django does, then runs what
``WSGIHandler`` runs (``request_started``, the request, the sync middleware chain built by
``load_middleware(is_async=False)``) in ONE hop to the request's thread, awaited in the request's
own task (one more task watches for a disconnect, see :meth:`SyncFastHandler.handle_sync`), and
sends the response from the event loop. A complete response is closed (``request_finished``) in
that thread before its bytes go out; a streaming one is sent as Django sends it, a sync body
iterated in the same thread as it is sent (``sync_stream.py``; on Django's path too, so that no
sync body is read whole into a list with Django's warning), an async body on the event loop, and
closed in that thread at its end.

Every request, on this path and on Django's, has that one thread of its own, leased from the
worker's request threads (``request_threads.py``, which says how a stream shares their bound):
its sync code, its thread-sensitive calls, its signals and so its database connection's checks
all run there, as under ``WSGIHandler``. Anything else than a sync view (an async view, an
async-only middleware, a URL it cannot resolve) goes to Django's own async path, so async views
still run on the event loop; that path's middleware chain takes one hop per run of sync hooks
when every middleware is a plain ``MiddlewareMixin`` (``async_chain.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

import django
from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse, HttpRequest, HttpResponseBase
from django.urls import URLResolver, get_resolver, set_script_prefix
from django.utils.module_loading import import_string

from django_asgiserve.asgi import async_chain
from django_asgiserve.asgi.leases import Lease
from django_asgiserve.asgi.request_threads import SIZE, RequestThreads
from django_asgiserve.asgi.sync_stream import ThreadIterated, is_sync_stream
from django_asgiserve.upstream import django as django_internals

#: The types ``ASGIHandler`` is declared with (django-stubs), which its subclasses keep: an ASGI
#: app to every caller (``asgi/types.py``'s ``ASGIApp`` is one of them).
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Mapping[str, Any]]]
Send = Callable[[Mapping[str, Any]], Awaitable[None]]

#: Distinct paths whose view kind (sync or not) is remembered.
RESOLVE_CACHE_SIZE = 4096
#: The lease of the request Django's own path serves in this context (set by ``call_django``).
django_path_lease: ContextVar[Lease | None] = ContextVar("django_path_lease", default=None)


def get_asgi_application() -> SyncFastHandler:
    """What ``django.core.asgi.get_asgi_application`` returns in a worker with the fast path on."""
    django.setup(set_prefix=False)
    return SyncFastHandler()


def middleware_all_sync_capable() -> bool:
    """Whether every entry of ``MIDDLEWARE`` can run in a sync chain without an adapter."""
    return all(getattr(import_string(path), "sync_capable", True) for path in settings.MIDDLEWARE)


class SyncChain(ASGIHandler):
    """Django's ASGI handler with its middleware loaded in sync mode, as ``WSGIHandler`` loads it.

    It keeps ``ASGIHandler``'s requests, response handling and last-chance error handling; only
    :class:`SyncFastHandler` calls it, from a request's thread.
    """

    def __init__(self) -> None:  # not ASGIHandler's, which loads the async chain
        self.load_middleware(is_async=False)


class SyncFastHandler(ASGIHandler):
    """``ASGIHandler`` with the sync fast path (see the module's docstring)."""

    def __init__(self, threads: int = SIZE) -> None:
        super().__init__()
        self.sync_chain = SyncChain() if middleware_all_sync_capable() else None
        self.request_threads = RequestThreads(size=threads)

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
        """``ASGIHandler.__call__``, the request's thread leased (``request_threads.py``); it
        holds no place in the bound: the request runs on the event loop."""
        if scope["type"] != "http" or not hasattr(self, "request_threads"):
            await super().__call__(scope, receive, send)  # Django's error for other scopes
            return
        lease = self.request_threads.lease(counted=False)
        token = django_path_lease.set(lease)
        try:
            async with self.request_threads.context(lease):
                await self.handle(scope, receive, send)
        finally:
            django_path_lease.reset(token)
            lease.release()

    async def run_get_response(self, request: HttpRequest) -> HttpResponseBase:
        """Django's async path; a sync body its response has (a ``FileResponse``, whitenoise's)
        is iterated in the request's thread as it is sent, as on the fast path."""
        response: HttpResponseBase = await super().run_get_response(request)
        lease = django_path_lease.get()
        if lease is not None and is_sync_stream(response):
            return ThreadIterated(response, lease).as_response()
        return response

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
        path = scope["path"].removeprefix(django_internals.script_prefix(scope))
        return resolves_to_sync(get_resolver(), path)

    async def handle_sync(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Django's request cycle with the sync work in one hop to the request's thread, awaited
        in the request's own task, raced against a disconnect by one watcher task (Django's
        handler runs the request in a second task and waits for either: two tasks, and the loop
        rounds they cost).

        As under ``ASGIHandler.handle``: a client gone before the response is ready gets none
        (the view's thread cannot be stopped, so the response is closed, unsent), a message other
        than a disconnect after the body raises, and a stream stops when its client goes.
        """
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        lease = self.request_threads.lease(counted=True)
        made = Made()
        listening = asyncio.create_task(self.listen_for_disconnect(receive))
        try:
            try:
                response = await lease.run(self.respond, scope, body_file, lease, made)
            except asyncio.CancelledError:
                listening.cancel()
                # The thread cannot be stopped: what it makes is closed there, after it.
                lease.submit(made.close_stream)
                raise
            if listening.done():  # the client went while the view ran
                if response.streaming:
                    await lease.run(response.close)
                with contextlib.suppress(RequestAborted):
                    listening.result()  # an AssertionError (a message after the body) goes up
            elif response.streaming:
                async with self.request_threads.context(lease):  # an async body's calls
                    await self.stream(response, listening, send, lease)
            else:
                listening.cancel()
                try:
                    await self.send_response(response, send)
                finally:
                    with contextlib.suppress(asyncio.CancelledError, RequestAborted):
                        await listening
        finally:
            lease.release()
            body_file.close()

    async def stream(
        self, response: HttpResponseBase, listening: asyncio.Task[None], send: Send, lease: Lease
    ) -> None:
        """Send a streaming response until it ends or the client goes (``listening`` ends),
        then close it in the request's thread (``request_finished`` runs there)."""
        body = (
            ThreadIterated(response, lease).as_response() if is_sync_stream(response) else response
        )
        sending = asyncio.create_task(self.send_response(body, send))
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
                await lease.run(response.close)

    def respond(
        self,
        scope: Scope,
        body_file: tempfile.SpooledTemporaryFile[bytes],
        lease: Lease,
        made: Made,
    ) -> HttpResponseBase:
        """What ``WSGIHandler.__call__`` does, in the request's thread: signals, request,
        response; then what the thread does next.

        A complete response is closed here (sending ``request_finished``) before its bytes go
        out, and the thread is free for the next request; a sync streaming body keeps it (its
        parts are made here); an async one runs on the event loop, so the thread gives up its
        place in the bound (``request_threads.py``).
        """
        set_script_prefix(django_internals.script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:
            assert error_response is not None  # Django makes one or the other
            response = error_response
        else:
            assert self.sync_chain is not None
            response = self.sync_chain.get_response(request)
            django_internals.set_handler_class(response, self.__class__)
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        made.response = response
        if not response.streaming:
            response.close()
            lease.release()
        elif not is_sync_stream(response):
            lease.park()
        return response


class Made:
    """The response the request's thread made, for its task that may have stopped waiting."""

    __slots__ = ("response",)

    def __init__(self) -> None:
        self.response: HttpResponseBase | None = None

    def close_stream(self) -> None:
        """In the request's thread, after ``respond``: close a stream nobody will send."""
        if self.response is not None and self.response.streaming:
            self.response.close()


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
    wanted = serve_settings.raw().get("SYNC_FAST_PATH", True) is True
    if wanted and django_internals.fast_path_supported():
        django.core.asgi.get_asgi_application = get_asgi_application
