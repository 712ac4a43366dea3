"""The ASGI layer that counts requests and WebSocket connections on the metrics board
(``--metrics``; the supervisor serves the figures, see :mod:`supervisor.metrics_listener`).

It sits just inside the health layer, so that a balancer's probes are not counted. A request
counts once, with its status, when the last chunk of its response body has been sent (the
histogram measures from its arrival here to then); one that ends without a complete response
counts when the application returns: with the status it sent, else 499 when the client had
gone (nginx's code for it), else 500 (what the server answers). A WebSocket counts as open
from its ``websocket.accept`` until the application returns. The counters are this process's
own slot of the board, so a request takes no lock (see :mod:`process.metrics_board`).
"""

from __future__ import annotations

from time import perf_counter_ns

from django_asgiserve.asgi.types import ASGIApp, Message, Receive, Scope, Send
from django_asgiserve.process.metrics_board import (
    IN_FLIGHT,
    WEBSOCKETS_OPEN,
    WEBSOCKETS_TOTAL,
    Board,
    Slot,
    record_request,
)

#: The status counted for a request whose client went away before any response.
CLIENT_GONE = 499


def count_requests(app: ASGIApp, board_fd: int) -> ASGIApp:
    """``app``, counting on the board whose descriptor is ``board_fd``."""
    board = Board(board_fd)

    async def metrics_app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await app(scope, receive, send)
            return
        slot = board.slot if board.slot is not None else board.claim()
        if slot is None:  # the board is full (said once)
            await app(scope, receive, send)
        elif kind == "http":
            await count_request(app, slot, scope, receive, send)
        else:
            await count_websocket(app, slot, scope, receive, send)

    return metrics_app


async def count_request(
    app: ASGIApp, slot: Slot, scope: Scope, receive: Receive, send: Send
) -> None:
    arrived = perf_counter_ns()
    status = 0
    counted = gone = False

    async def watching_receive() -> Message:
        nonlocal gone
        message = await receive()
        if message["type"] == "http.disconnect":
            gone = True
        return message

    async def counting_send(message: Message) -> None:
        nonlocal status, counted
        kind = message["type"]
        if kind == "http.response.start":
            status = message["status"]
            await send(message)
            return
        await send(message)
        if not counted and (
            (kind == "http.response.body" and not message.get("more_body", False))
            or kind == "http.response.pathsend"
        ):
            counted = True
            record_request(slot, status, perf_counter_ns() - arrived)

    slot[IN_FLIGHT] += 1
    try:
        await app(scope, watching_receive, counting_send)
    finally:
        slot[IN_FLIGHT] -= 1
        if not counted:
            status = status or (CLIENT_GONE if gone else 500)
            record_request(slot, status, perf_counter_ns() - arrived)


async def count_websocket(
    app: ASGIApp, slot: Slot, scope: Scope, receive: Receive, send: Send
) -> None:
    accepted = False

    async def counting_send(message: Message) -> None:
        nonlocal accepted
        await send(message)
        if message["type"] == "websocket.accept" and not accepted:
            accepted = True
            slot[WEBSOCKETS_OPEN] += 1
            slot[WEBSOCKETS_TOTAL] += 1

    try:
        await app(scope, receive, counting_send)
    finally:
        if accepted:
            slot[WEBSOCKETS_OPEN] -= 1
