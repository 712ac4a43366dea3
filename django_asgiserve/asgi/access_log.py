"""Each HTTP response and WebSocket connection logged on ``django.server``, as runserver does."""

from __future__ import annotations

import logging
import time
from typing import Any

from django_asgiserve.asgi.types import ASGIApp, Message, Receive, Scope, Send
from django_asgiserve.insight import request_cost as request_cost_module

server_logger = logging.getLogger("django.server")


def log_requests(app: ASGIApp, *, request_cost: bool = False) -> ASGIApp:
    """Log each HTTP response and WebSocket connection on ``django.server``, as runserver does
    (with what each request cost, see :mod:`insight.request_cost`, when ``request_cost``)."""

    async def logging_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await _logged_http(app, scope, receive, send, request_cost)
        elif scope["type"] == "websocket":
            await _logged_websocket(app, scope, receive, send)
        else:
            await app(scope, receive, send)

    return logging_app


def log_extra(status_code: int) -> dict[str, Any]:
    return {"status_code": status_code, "server_time": server_time()}


#: The second last stamped and its text: a busy worker formats the time once a second.
_stamp: tuple[int, str] = (-1, "")


def server_time() -> str:
    """Now, to the second, in http.server's format, as runserver stamps its lines."""
    global _stamp
    now = int(time.time())
    if _stamp[0] != now:
        _stamp = (now, time.strftime("%d/%b/%Y %H:%M:%S", time.localtime(now)))
    return _stamp[1]


def request_line(scope: Scope) -> str:
    path = scope.get("raw_path") or scope["path"].encode()
    if isinstance(path, bytes):
        path = path.decode("latin-1")
    query = scope.get("query_string", b"").decode("latin-1")
    target = f"{path}?{query}" if query else path
    return f"{scope.get('method', 'GET')} {target} HTTP/{scope.get('http_version', '1.1')}"


async def _logged_http(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, request_cost: bool = False
) -> None:
    status: int | None = None
    cost = request_cost_module.begin() if request_cost else None
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
        spent = request_cost_module.end(cost) if cost is not None else ""
        # Nothing is built for a line no handler would write (django.server set to WARNING).
        if server_logger.isEnabledFor(level):
            server_logger.log(
                level, '"%s" %s %s%s', request_line(scope), code, size, spent, extra=log_extra(code)
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
