"""The count ``--max-requests`` reads: requests and WebSocket connections a worker has served.

One integer in memory shared with the processes a backend forks, so gunicorn's workers count into
the same one (gunicorn's own ``max_requests``, which uvicorn's worker honours, would end a worker
with the connections it had accepted reset). The worker's recycle thread reads it (see
:mod:`django_asgiserve.process.recycling`); :mod:`stack` puts the layer in its place.
"""

from __future__ import annotations

from multiprocessing.sharedctypes import RawValue
from typing import Any

from django_asgiserve.asgi.types import ASGIApp, Receive, Scope, Send


class ServedCount:
    """Requests and WebSocket connections served by this process and the ones it forks later."""

    def __init__(self) -> None:
        # Unlocked: processes that race on an increment lose a count, which only delays a
        # recycle.
        self._value: Any = RawValue("Q", 0)

    def add_one(self) -> None:
        self._value.value += 1

    @property
    def value(self) -> int:
        return int(self._value.value)


def count_served(app: ASGIApp, served: ServedCount) -> ASGIApp:
    """``app``, adding each HTTP request and WebSocket connection to ``served``."""

    async def counting_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            served.add_one()
        await app(scope, receive, send)

    return counting_app
