"""The ``uvicorn.Server`` asgiserve runs, on the uvicorn backend and in gunicorn's workers.

Imported only where it serves (``serve()``, a gunicorn worker): it imports uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn

from django_asgiserve.backends.base import ACCEPTED_SETTLE_SECONDS
from django_asgiserve.upstream import uvicorn as uvicorn_internals


class StopAcceptingServer(uvicorn.Server):
    """A uvicorn server that leaves signals to its caller and stops in two steps: it stops
    accepting at once, so that the worker replacing it gets every new connection, and shuts
    down (which closes idle connections) once the connections already accepted are read."""

    loop: asyncio.AbstractEventLoop | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The worker owns signal handling; uvicorn must not take SIGINT/SIGTERM.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def request_stop(self) -> None:
        """Stop, from any thread: at once if the server has not started serving yet."""
        if self.loop is None:
            self.should_exit = True
        else:
            self.loop.call_soon_threadsafe(self.stop_accepting)

    def stop_accepting(self) -> None:
        assert self.loop is not None
        if not uvicorn_internals.close_servers(self):
            self.should_exit = True  # its fallback: shut down at once
            return
        self.loop.call_later(ACCEPTED_SETTLE_SECONDS, setattr, self, "should_exit", True)
