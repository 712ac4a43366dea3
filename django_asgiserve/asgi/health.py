"""The health path (``--health-path``) and the draining state it reports.

The path is answered here, before Django (no middleware, no database): ``200`` while the worker
serves, ``503`` from the moment it is told to drain (a ``--drain-delay`` after SIGTERM) or to
stop. It sits outside the request log, so a balancer's probes every few seconds do not fill it.
While draining, every HTTP response also carries ``Connection: close``, so that a balancer's
kept-alive connections end after an answer rather than being closed under a request.

The state is one byte of anonymous shared memory made in the worker before its backend serves:
a backend that forks its own processes (gunicorn's arbiter) hands it to each of them, so they
all see the worker's flag. A worker may be told to drain before it has built its layers (it
says it is ready first): the flag is made by whichever comes first, and keeps what it was told.
It is made without a lock: SIGTERM's handler marks it too, in the main thread, which may be
making it at that moment (a lock held there would never be released).
"""

from __future__ import annotations

import mmap

from django_asgiserve.asgi.types import ASGIApp, Message, Receive, Scope, Send

#: This worker's draining flag (byte 0 non-zero: draining) once needed: the first made. Two
#: threads (or a thread and the signal handler interrupting it) may each append one; both then
#: use the first, so none is lost.
_made: list[mmap.mmap] = []

HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"cache-control", b"no-store")]


def _flag() -> mmap.mmap:
    """This worker's flag, made on first use: in the worker (after the fork from the preloader
    or the command), so that a new worker never shares the flag of the one it replaces."""
    if not _made:
        _made.append(mmap.mmap(-1, 1))  # list.append is atomic: see _made
    return _made[0]


def mark_draining() -> None:
    """From now on the health path answers 503, in this process and every process it forks."""
    _flag()[0] = 1


def is_draining() -> bool:
    return bool(_made) and _made[0][0] != 0


def answer_health(app: ASGIApp, path: str) -> ASGIApp:
    """``app`` with ``path`` (when given) answered here, and ``Connection: close`` on every
    response once draining."""
    flag = _flag()

    async def health_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        draining = flag[0] != 0
        if path and scope["path"] == path:
            body = b"draining\n" if draining else b"ok\n"
            headers = [*HEADERS, (b"content-length", str(len(body)).encode())]
            if draining:
                headers.append((b"connection", b"close"))
            status = 503 if draining else 200
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if not draining:
            await app(scope, receive, send)
            return

        async def closing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await app(scope, receive, closing_send)

    return health_app
