"""daphne's ``Server`` as asgiserve runs it: streamed request bodies, response bodies written
as the client reads them, and a graceful stop that lets the requests already accepted finish.

Imported in the worker only, in ``serve()``: importing ``daphne.server`` installs Twisted's
asyncio reactor, which belongs to one process (see :mod:`~django_asgiserve.backends.daphne`).
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

from daphne.server import Server
from twisted.internet import reactor

from django_asgiserve.backends.base import ACCEPTED_SETTLE_SECONDS
from django_asgiserve.backends.daphne_body import ASGIApp, StreamedBodyServer

POLL_SECONDS = 0.05


class GracefulServer(StreamedBodyServer, Server):  # type: ignore[misc]
    """On ``stop()``, stops listening at once and stops the reactor once no application is
    still running, or ``graceful_timeout`` seconds later."""

    def __init__(self, application: ASGIApp, *, graceful_timeout: float, **options: Any) -> None:
        self.graceful_timeout = graceful_timeout
        self.listening_ports: list[Any] = []
        super().__init__(application, **options)

    def listen_success(self, port: Any) -> None:
        self.listening_ports.append(port)

    async def handle_reply(self, protocol: Any, message: dict[str, Any]) -> None:
        if message.get("type") == "http.response.start":
            message = with_date(message)
        # daphne writes every body chunk into Twisted's buffer at once: a large
        # response to a slow client would sit in memory whole. Wait for the buffer
        # to drain between chunks, as the other servers do.
        is_body = message.get("type") == "http.response.body"
        if is_body and not message.get("more_body", False):
            WriteFlow.release(protocol)
        await super().handle_reply(protocol, message)
        if is_body and message.get("more_body", False):
            await WriteFlow.of(protocol).drained()

    def stop(self) -> None:
        if not reactor.running:
            self.abort_start = True
            return
        for port in self.listening_ports:
            port.stopListening()
        deadline = time.monotonic() + self.graceful_timeout
        # A connection accepted a moment ago has no application yet: its request is
        # still unread. Give it the time to start before judging what is idle.
        # twisted.internet.reactor is typed as the module that installs it.
        reactor.callLater(ACCEPTED_SETTLE_SECONDS, self._stop_when_idle, deadline)  # type: ignore[arg-type]

    def _stop_when_idle(self, deadline: float) -> None:
        busy = any(
            details.get("application_instance") is not None
            and not details["application_instance"].done()
            for details in self.connections.values()
        )
        if busy and time.monotonic() < deadline:
            reactor.callLater(POLL_SECONDS, self._stop_when_idle, deadline)  # type: ignore[arg-type]
        elif reactor.running:
            reactor.stop()  # type: ignore[misc]


def with_date(start: dict[str, Any]) -> dict[str, Any]:
    """A response start with the ``Date`` header that runserver and the other servers send (an
    origin server with a clock must, RFC 9110), which daphne leaves out; one the application
    set is kept."""
    headers = list(start.get("headers", ()))
    if any(bytes(name).lower() == b"date" for name, _value in headers):
        return start
    now = formatdate(usegmt=True).encode("ascii")
    return {**start, "headers": [*headers, (b"date", now)]}


class WriteFlow:
    """A Twisted push producer for one response: paused while the connection's write buffer
    is full, so the ASGI ``send`` of the next body chunk can wait until it has drained."""

    def __init__(self, request: Any) -> None:
        import asyncio

        self._resumed = asyncio.Event()
        self._resumed.set()
        # Finished or disconnected: nothing will drain any more, so never wait again.
        request.notifyFinish().addBoth(lambda _: self.stopProducing())

    @classmethod
    def of(cls, request: Any) -> WriteFlow:
        flow = getattr(request, "_asgiserve_flow", None)
        if flow is None:
            flow = request._asgiserve_flow = cls(request)
            request.registerProducer(flow, True)
        return flow

    @staticmethod
    def release(request: Any) -> None:
        """Unregister before the last chunk: Twisted refuses to finish a request otherwise."""
        if getattr(request, "_asgiserve_flow", None) is not None:
            request._asgiserve_flow = None
            request.unregisterProducer()

    async def drained(self) -> None:
        await self._resumed.wait()

    def pauseProducing(self) -> None:
        self._resumed.clear()

    def resumeProducing(self) -> None:
        self._resumed.set()

    def stopProducing(self) -> None:
        self._resumed.set()
