"""The ASGI layers the worker puts around the project's application, the same on every backend.

From the outside in: lifespan is answered here (Django's handler rejects it, and backends would
log warnings about that), then proxy headers are applied (with ``--proxy-headers``; see
:mod:`proxy`), then requests are logged in runserver's format, then static files are served (when
runserver would serve them), then the project's ``ASGI_APPLICATION`` runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

server_logger = logging.getLogger("django.server")


def wrap(
    app: ASGIApp,
    *,
    serve_static: bool,
    proxy_headers: bool = False,
    forwarded_allow_ips: Sequence[str] = (),
    generation: str | None = None,
    listener_paths: frozenset[str] = frozenset(),
) -> ASGIApp:
    """The project's application with asgiserve's layers around it; with the reloader's
    ``generation``, open tabs follow reloads (see :mod:`browser`)."""
    if serve_static:
        from django_asgiserve.static import StaticFiles

        app = StaticFiles(app)
    if generation is not None:
        from django_asgiserve.browser import follow

        app = follow(app, generation, listener_paths)
    app = log_requests(app)
    if proxy_headers:
        # Outside the log, so that it shows the client the proxy reports.
        from django_asgiserve.proxy import TrustedProxies, trust_proxy_headers

        app = trust_proxy_headers(app, TrustedProxies(forwarded_allow_ips))
    return answer_lifespan(app)


def answer_lifespan(app: ASGIApp) -> ASGIApp:
    """Complete lifespan startup and shutdown here; pass every other scope on."""

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    return lifespan_app


def log_requests(app: ASGIApp) -> ASGIApp:
    """Log each HTTP response and WebSocket connection on ``django.server``, as runserver does."""

    async def logging_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await _logged_http(app, scope, receive, send)
        elif scope["type"] == "websocket":
            await _logged_websocket(app, scope, receive, send)
        else:
            await app(scope, receive, send)

    return logging_app


def log_extra(status_code: int) -> dict[str, Any]:
    # runserver stamps its lines to the second, in http.server's format.
    return {"status_code": status_code, "server_time": time.strftime("%d/%b/%Y %H:%M:%S")}


def request_line(scope: Scope) -> str:
    path = scope.get("raw_path") or scope["path"].encode()
    if isinstance(path, bytes):
        path = path.decode("latin-1")
    query = scope.get("query_string", b"").decode("latin-1")
    target = f"{path}?{query}" if query else path
    return f"{scope.get('method', 'GET')} {target} HTTP/{scope.get('http_version', '1.1')}"


async def _logged_http(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    status: int | None = None
    size = 0

    async def counting_send(message: Message) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))
        await send(message)

    try:
        await app(scope, receive, counting_send)
    finally:
        code = status if status is not None else 500
        level = logging.ERROR if code >= 500 else logging.WARNING if code >= 400 else logging.INFO
        server_logger.log(
            level, '"%s" %s %s', request_line(scope), code, size, extra=log_extra(code)
        )


async def _logged_websocket(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    client = scope.get("client") or ("-", 0)
    where = f"{scope['path']} [{client[0]}:{client[1]}]"
    accepted = False
    started = time.monotonic()

    async def watching_send(message: Message) -> None:
        nonlocal accepted
        if message["type"] == "websocket.accept":
            accepted = True
            server_logger.info("WebSocket CONNECT %s", where, extra=log_extra(101))
        elif message["type"] == "websocket.close" and not accepted:
            server_logger.warning("WebSocket REJECT %s", where, extra=log_extra(403))
        await send(message)

    try:
        await app(scope, receive, watching_send)
    finally:
        if accepted:
            server_logger.info(
                "WebSocket DISCONNECT %s (%.1fs)",
                where,
                time.monotonic() - started,
                extra=log_extra(101),
            )
