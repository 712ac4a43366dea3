"""In-process ASGI requests for unit tests: a scope, and a connection run as a task.

asgiref's ``ApplicationCommunicator`` runs the application in an empty context; a
:class:`Connection` runs it in the caller's, so that a ``ThreadSensitiveContext`` the test
entered applies to the request.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.helpers.polling import DEADLINE


def scope_for(url: str) -> dict[str, Any]:
    """An HTTP GET scope for ``url`` (a path with an optional query string)."""
    path, _, query = url.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


class Connection:
    """One request to ``app``: put messages in ``incoming``, read what it ``sent``."""

    def __init__(self, app: Any, url: str) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.task = asyncio.create_task(app(scope_for(url), self.incoming.get, self.send))

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def finished(self) -> list[dict[str, Any]]:
        """What the application sent, once it has returned."""
        await asyncio.wait_for(self.task, DEADLINE)
        return self.sent
