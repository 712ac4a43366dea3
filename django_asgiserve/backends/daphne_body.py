"""Request bodies on daphne, streamed to the application in bounded chunks with backpressure.

daphne hands a request to the application only once Twisted has collected its whole body (in
memory, or a temporary file past 100 kB), then puts all of it on the application's queue at
once: an upload sits in the worker whole. Here a request with a large (or chunked) body starts
the application at its first body bytes; every chunk Twisted parses goes to a bounded buffer the
application's ``receive`` drains, and the connection stops being read while that buffer is full:
the TCP (or TLS) transport is paused on HTTP/1.1, the stream on HTTP/2, whose flow-control
window then closes.

Imported in the worker only: daphne's modules need the reactor daphne installs.
"""

from __future__ import annotations

import asyncio
import io
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from daphne.http_protocol import HTTPFactory, WebRequest
from twisted.internet.interfaces import IPushProducer

from django_asgiserve.upstream import twisted as twisted_internals

#: Bodies up to this size go daphne's way (read whole, then sent): nothing to gain below it.
STREAM_ABOVE = 64 * 1024
#: Stop reading the connection when this much body waits for the application...
HIGH_WATER = 1024 * 1024
#: ...and read again once the application has brought it down to this.
LOW_WATER = 256 * 1024
#: The most body one ``http.request`` message carries (small network reads are joined up to it).
MESSAGE_SIZE = 64 * 1024

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
ASGIApp = Callable[..., Awaitable[None]]


class RequestBody:
    """The body of one request between Twisted, which feeds it, and the application's ``receive``.

    Its own buffer replaces daphne's queue for ``http.request`` messages; everything else the
    application receives (``http.disconnect``) still comes from daphne's queue.
    """

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._aborted = False
        self._delivered = False
        self._paused = False
        self._arrived = asyncio.Event()

    @property
    def complete(self) -> bool:
        return self._complete

    def feed(self, data: bytes) -> None:
        if self._aborted or self._complete or not data:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        self._arrived.set()
        if self._buffered > HIGH_WATER:
            # Each time, not just once: Twisted may resume the transport itself (when a
            # response being written drains), and the buffer must stay bounded regardless.
            self._paused = True
            self._producer.pauseProducing()

    def finish(self) -> None:
        self._complete = True
        self._arrived.set()

    def abort(self, resume: bool = False) -> None:
        """The connection is gone, or the response is over: drop what waits (and, if ``resume``,
        the rest of the body as it comes), and wake ``receive``."""
        self._aborted = True
        self._chunks.clear()
        self._buffered = 0
        self._arrived.set()
        if resume and self._paused:
            self._paused = False
            self._producer.resumeProducing()

    def application(self, app: ASGIApp) -> ASGIApp:
        """``app`` with its ``receive`` reading this body first, then daphne's queue."""

        def with_streamed_body(*, scope: Message, receive: Receive, send: Any) -> Awaitable[None]:
            async def streamed_receive() -> Message:
                return await self.receive(receive)

            return app(scope=scope, receive=streamed_receive, send=send)

        return with_streamed_body

    async def receive(self, daphne_receive: Receive) -> Message:
        while not self._delivered and not self._aborted:
            if self._chunks or self._complete:
                return self._next_message()
            self._arrived.clear()
            await self._arrived.wait()
        while True:
            # daphne queued an empty, final http.request of its own when it started the
            # application; the body came from here instead.
            message = await daphne_receive()
            if message.get("type") != "http.request":
                return message

    def _next_message(self) -> Message:
        parts = [self._chunks.popleft()] if self._chunks else []
        size = len(parts[0]) if parts else 0
        while self._chunks and size + len(self._chunks[0]) <= MESSAGE_SIZE:
            parts.append(self._chunks.popleft())
            size += len(parts[-1])
        self._buffered -= size
        if self._paused and self._buffered <= LOW_WATER:
            self._paused = False
            # On HTTP/2 this hands the chunks the stream held back to feed() right away.
            self._producer.resumeProducing()
        more_body = bool(self._chunks) or not self._complete
        self._delivered = not more_body
        return {"type": "http.request", "body": b"".join(parts), "more_body": more_body}


class NoBackpressure:
    """For a transport that cannot be paused (none of Twisted's TCP or TLS ones)."""

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass


class StreamingRequest(WebRequest):  # type: ignore[misc]
    """daphne's request, starting the application at its first body bytes when the body is large
    or of unknown length, instead of once the body is all in."""

    streamed_body: RequestBody | None = None
    _declared_length: int | None = 0
    _finish_when_body_ends = False

    def gotLength(self, length: int | None) -> None:
        self._declared_length = length
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.streamed_body is None and self._should_stream():
            self._start_streaming()
        if self.streamed_body is not None:
            if not self.finished:
                self.streamed_body.feed(data)
        else:
            super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self.streamed_body is not None:
            self.streamed_body.finish()
            if self._finish_when_body_ends and not self.finished:
                super().handle_reply({"type": "http.response.body", "more_body": False})
        else:
            super().requestReceived(command, path, version)

    def handle_reply(self, message: Message) -> None:
        body = self.streamed_body
        if body is None or body.complete or self.finished:
            super().handle_reply(message)
            return
        # A response before the body's end.
        kind = message.get("type")
        if kind == "http.response.start" and self.transport is not None:
            # HTTP/1.1 cannot read the next request on this connection until the rest of this
            # body is through: close it after the response.
            self.channel.persistent = False
            self.responseHeaders.setRawHeaders(b"connection", [b"close"])
        last = kind == "http.response.body" and not message.get("more_body", False)
        if last and self.transport is None:
            # HTTP/2: Twisted forgets a finished stream, and DATA the client still sends on it
            # then breaks the whole connection. End the response once the body has ended.
            super().handle_reply({**message, "more_body": True})
            self._finish_when_body_ends = True
            body.abort(resume=True)
            return
        super().handle_reply(message)
        if self.finished:
            body.abort(resume=False)

    def connectionLost(self, reason: Any) -> None:
        if self.streamed_body is not None:
            self.streamed_body.abort()
        super().connectionLost(reason)

    def _should_stream(self) -> bool:
        length = self._declared_length
        if length is not None and length <= STREAM_ABOVE:
            return False
        # daphne replays a WebSocket handshake's body to the WebSocket protocol from content.
        return not self.requestHeaders.hasHeader(b"upgrade") and self._request_line() is not None

    def _request_line(self) -> tuple[bytes, bytes, bytes] | None:
        """(method, target, version) before Twisted's ``requestReceived`` brings them."""
        if self.transport is None:  # HTTP/2: the request's channel is its H2Stream
            return twisted_internals.stream_request_line(self.channel)
        # HTTP/1.1: Twisted's channel holds the parsed request line until the body's end.
        return twisted_internals.request_line(self.channel)

    def _producer(self) -> Any:
        """What to pause to stop reading this body: the HTTP/2 stream, or the connection."""
        if self.transport is None:
            return self.channel
        return IPushProducer(self.transport, NoBackpressure())

    def _start_streaming(self) -> None:
        request_line = self._request_line()
        assert request_line is not None
        self.content.close()  # type: ignore[has-type]  # daphne's WebRequest is untyped
        self.content = io.BytesIO()
        self.streamed_body = RequestBody(self._producer())
        # Twisted's request set-up and daphne's process() run now, on an empty body: daphne
        # builds the scope and starts the application, whose receive reads streamed_body.
        super().requestReceived(*request_line)


class StreamingHTTPFactory(HTTPFactory):  # type: ignore[misc]
    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        protocol.requestFactory = StreamingRequest
        return protocol


class StreamedBodyServer:
    """A mixin for daphne's ``Server``: an application for a request whose body is streamed gets
    its ``receive`` from that body."""

    application: ASGIApp

    def create_application(self, protocol: Any, scope: Message) -> Any:
        body = getattr(protocol, "streamed_body", None)
        if body is None:
            return super().create_application(protocol, scope)  # type: ignore[misc]
        # daphne builds the application instance inside create_application, from this attribute.
        application = self.application
        self.application = body.application(application)
        try:
            return super().create_application(protocol, scope)  # type: ignore[misc]
        finally:
            self.application = application
