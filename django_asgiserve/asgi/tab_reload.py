"""What keeps an open browser tab in step with the code, with the reloader on.

Each reload has a *generation*: an id the supervisor makes and hands to every worker it forks
for that reload (a crashed worker's replacement keeps it: its code did not change). This module
owns what the workers do with it:

- django-browser-reload's listener reloads a tab when the ``versionId`` of its pings changes;
  the module attribute it reads, ``django_browser_reload.views.version_id``, becomes the
  generation in each worker (:func:`adopt_generation`), so every code reload reloads the tab and
  the workers of one reload agree;
- ``GENERATION_PATH`` is an event stream that tells the generation serving (:func:`follow`),
  which the error page's script listens to (:func:`error_page_script`), so a tab showing the
  error page comes back once an edit fixes the code;
- while the code is broken, a request for an event stream (what EventSource sends) gets pings in
  django-browser-reload's wire format (:func:`serve_pings`): its listener keeps listening and
  reloads the tab onto the error page, instead of fetching the error page once per retry;
- the listeners' streams never hold a stopping worker: :func:`end_streams` ends them at once, so
  Ctrl+C and reloads do not wait the grace period for a tab that is merely listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import sys
import threading
from collections.abc import Awaitable

from django_asgiserve.asgi.types import ASGIApp, Message, Receive, Scope, Send

#: asgiserve's own listener stream (the error page's script listens to it).
GENERATION_PATH = "/__asgiserve__/generation/"
#: Milliseconds an EventSource waits before it reconnects to ``GENERATION_PATH``.
RETRY_MS = 100
#: Seconds between the pings sent while the code is broken (django-browser-reload's pace).
PING_SECONDS = 1.0
#: Seconds an application gets to return after its stream was ended and it was told the client
#: left, before it is cancelled.
APP_END_SECONDS = 0.2
EVENT_STREAM_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
BROWSER_RELOAD_VIEWS = "django_browser_reload.views"


def new_generation() -> str:
    return secrets.token_hex(16)


def adopt_generation(generation: str) -> bool:
    """Make django-browser-reload's version id this worker's generation (if it is loaded).

    Whether it did: should django-browser-reload rename the attribute, tabs follow only the
    reloads its own id changes with, as they would under runserver.
    """
    from django_asgiserve.upstream import browser_reload

    return browser_reload.set_version_id(generation)


def browser_reload_events_path() -> str | None:
    """The path of django-browser-reload's event stream in this project, if it is routed."""
    if BROWSER_RELOAD_VIEWS not in sys.modules:
        return None
    try:
        from django.urls import reverse

        path: str = reverse("django_browser_reload:events")
        return path
    except Exception:  # not routed, or routed under another name: nothing to follow
        return None


def ping(generation: str) -> bytes:
    """One ping in django-browser-reload's wire format."""
    data = json.dumps({"type": "ping", "versionId": generation})
    return f"data: {data}\n\n".encode()


# -- ending the listeners' streams when the worker stops ------------------------------------

_lock = threading.Lock()
_stopping = False
_open: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


def end_streams() -> None:
    """End every listener stream now, and those that open from now on at once; thread-safe."""
    global _stopping
    with _lock:
        _stopping = True
        streams = list(_open)
    for loop, ended in streams:
        with contextlib.suppress(RuntimeError):  # its loop is closed: the stream is gone
            loop.call_soon_threadsafe(ended.set)


def _register() -> tuple[asyncio.AbstractEventLoop, asyncio.Event] | None:
    """A new listener stream's ``ended`` event, or None if the worker is stopping."""
    entry = (asyncio.get_running_loop(), asyncio.Event())
    with _lock:
        if _stopping:
            return None
        _open.add(entry)
    return entry


def _unregister(entry: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
    with _lock:
        _open.discard(entry)


async def _until(ended: asyncio.Event, awaitable: Awaitable[Message]) -> Message | None:
    """``awaitable``'s result, or None if ``ended`` is set first."""
    task = asyncio.ensure_future(awaitable)
    waiter = asyncio.ensure_future(ended.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        return task.result()
    task.cancel()
    return None


async def _end_at_once(send: Send) -> None:
    """Answer a listener that connects to a stopping worker with a stream that ends at once:
    it reconnects, soon, to whichever worker serves then."""
    await send({"type": "http.response.start", "status": 200, "headers": EVENT_STREAM_HEADERS})
    await send({"type": "http.response.body", "body": f"retry: {RETRY_MS}\n\n".encode()})


async def _serve_ended_on_stop(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, first_chunk: bytes = b""
) -> None:
    """Run ``app``'s event stream until it ends, or until the worker stops: then finish the
    response (so the server's graceful stop does not wait for it) and tell ``app`` the client
    left. ``first_chunk`` goes out right after a 200 event-stream response starts."""
    entry = _register()
    if entry is None:
        await _end_at_once(send)
        return
    ended = entry[1]
    started = finished = False
    send_lock = asyncio.Lock()

    async def stream_receive() -> Message:
        if ended.is_set():
            return {"type": "http.disconnect"}
        message = await _until(ended, receive())
        return message if message is not None else {"type": "http.disconnect"}

    async def stream_send(message: Message) -> None:
        nonlocal started, finished
        async with send_lock:
            if finished:
                return
            if message["type"] == "http.response.start":
                started = True
                await send(message)
                is_stream = any(
                    name.lower() == b"content-type" and value.startswith(b"text/event-stream")
                    for name, value in message.get("headers", [])
                )
                if first_chunk and message["status"] == 200 and is_stream:
                    await send(
                        {"type": "http.response.body", "body": first_chunk, "more_body": True}
                    )
                return
            if message["type"] == "http.response.body" and not message.get("more_body"):
                finished = True
            await send(message)

    task = asyncio.ensure_future(app(scope, stream_receive, stream_send))
    waiter = asyncio.ensure_future(ended.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            async with send_lock:
                if started and not finished:
                    finished = True
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            # The application now hears that the client left; Django ends the response then.
            await asyncio.wait({task}, timeout=APP_END_SECONDS)
        if task.done():
            task.result()
    finally:
        waiter.cancel()
        if not task.done():
            task.cancel()
        _unregister(entry)


# -- the layer and the streams -----------------------------------------------------------------


def follow(app: ASGIApp, generation: str, listener_paths: frozenset[str]) -> ASGIApp:
    """Answer ``GENERATION_PATH`` with the generation; end the streams of ``listener_paths``
    (django-browser-reload's, in a healthy worker) as soon as the worker stops."""
    adopted = adopt_generation(generation)
    # django-browser-reload's first ping comes a second after its stream opens: sending one at
    # once lets a tab notice a reload a second sooner. Only when its pings carry this very id.
    first_ping = ping(generation) if adopted else b""

    async def following_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
        elif scope["path"] == GENERATION_PATH and scope.get("method") == "GET":
            await _serve_ended_on_stop(generation_stream(generation), scope, receive, send)
        elif scope["path"] in listener_paths:
            await _serve_ended_on_stop(app, scope, receive, send, first_ping)
        else:
            await app(scope, receive, send)

    return following_app


def generation_stream(generation: str) -> ASGIApp:
    """An event stream that sends ``generation`` once, then stays open until the client leaves
    (or the worker stops)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": EVENT_STREAM_HEADERS})
        body = f"retry: {RETRY_MS}\ndata: {generation}\n\n".encode()
        await send({"type": "http.response.body", "body": body, "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass

    return app


def wants_event_stream(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"accept" and b"text/event-stream" in value:
            return True
    return False


def ping_stream(generation: str) -> ASGIApp:
    """Pings in django-browser-reload's wire format, at once and then every second."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": EVENT_STREAM_HEADERS})
        disconnected = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            while not disconnected.done():
                await send(
                    {"type": "http.response.body", "body": ping(generation), "more_body": True}
                )
                await asyncio.wait({disconnected}, timeout=PING_SECONDS)
        finally:
            disconnected.cancel()

    return app


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def serve_pings(generation: str, scope: Scope, receive: Receive, send: Send) -> None:
    """What a worker serving broken code answers an EventSource with."""
    await _serve_ended_on_stop(ping_stream(generation), scope, receive, send)


def error_page_script(generation: str, root_path: str) -> str:
    """A script for the error page: reload the tab once another generation serves."""

    def js(value: str) -> str:
        return json.dumps(value).replace("<", "\\u003c")

    return (
        "<script>(function () {"
        f" var source = new EventSource({js(root_path + GENERATION_PATH)});"
        " source.onmessage = function (event) {"
        f" if (event.data !== {js(generation)}) {{ source.close(); location.reload(); }}"
        " };"
        "})();</script>"
    )


_body_end = re.compile(rb"</body>", re.IGNORECASE)


def with_script(page: bytes, script: str) -> bytes:
    """``page`` with ``script`` before its last ``</body>`` (or at its end)."""
    matches = list(_body_end.finditer(page))
    at = matches[-1].start() if matches else len(page)
    return page[:at] + script.encode() + page[at:]
