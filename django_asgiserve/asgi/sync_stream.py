"""A sync streaming body sent over ASGI as the request's thread makes it.

Django's ``ASGIHandler.send_response`` reads a streaming body through
``StreamingHttpResponse.__aiter__``, which for a sync iterator (a generator, a ``FileResponse``'s
file) warns "StreamingHttpResponse must consume synchronous iterators" and reads the whole body
into a list with one ``sync_to_async`` call: in memory at once, and in whatever thread asgiref
picks outside the request's (on the sync fast path, asgiref's one shared thread, whose database
connection no request ever checks or closes). :class:`ThreadIterated` is the response as
``send_response`` reads it, but with the body iterated in the request's own thread (its lease,
``leases.py``), where ``request_started`` ran and ``close()`` will run, in one call: the thread
hands each part over as soon as it is made, and the event loop sends what it has been handed.
The thread runs at most :data:`AHEAD` bytes ahead of what was sent (as a WSGI server's writes run
ahead into the socket's buffer), and stops at the next part once the stream is abandoned (the
client went): a part being made is finished first, as a WSGI thread finds out at its next write.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any, cast

from django.http import HttpResponseBase

from django_asgiserve.asgi.leases import Lease

#: Bytes made and not yet taken by the event loop past which the thread waits: four of
#: ``ASGIHandler.chunk_size`` (64 KB, a ``FileResponse``'s read); with one, the thread and the loop
#: took turns at every part, and a 1 MB body cost twice the CPU time.
AHEAD = 2**18


class ThreadIterated:
    """``response`` for ``ASGIHandler.send_response``, its sync body iterated in ``lease``."""

    def __init__(self, response: HttpResponseBase, lease: Lease) -> None:
        self.response = response
        self.lease = lease
        self.handover = threading.Condition()
        self.parts: collections.deque[bytes] = collections.deque()
        self.size = 0  # bytes in parts
        self.ended = False  # by the thread: no part will follow
        self.stopped = False  # by the event loop: make no more
        self.waiter: asyncio.Future[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def as_response(self) -> HttpResponseBase:
        """This stand-in where Django wants a response: ``send_response`` reads its headers,
        cookies and status (``__getattr__``) and iterates its body (``__aiter__``)."""
        return cast(HttpResponseBase, self)

    def __getattr__(self, name: str) -> Any:
        # The headers, cookies and status send_response reads first.
        return getattr(self.response, name)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.loop = asyncio.get_running_loop()
        making = asyncio.ensure_future(self.lease.run(self.make))
        try:
            while parts := await self.take():
                for part in parts:
                    yield part
            await making  # the body's exception, if it raised one, goes up from here
        finally:
            with self.handover:
                self.stopped = True
                self.handover.notify()
            if not making.done():  # close() may run in the thread only after it
                with contextlib.suppress(Exception):
                    await asyncio.shield(making)

    async def take(self) -> list[bytes]:
        """On the event loop: the parts made so far, waiting for one; none at the end."""
        assert self.loop is not None
        while True:
            with self.handover:
                if self.parts:
                    parts = list(self.parts)
                    self.parts.clear()
                    self.size = 0
                    self.handover.notify()
                    return parts
                if self.ended:
                    return []
                waiter = self.waiter = self.loop.create_future()
            await waiter

    def make(self) -> None:
        """In the request's thread: iterate the body, handing each part over."""
        try:
            for part in self.response:
                with self.handover:
                    while self.size >= AHEAD and not self.stopped:
                        self.handover.wait()
                    if self.stopped:
                        return
                    self.parts.append(part)
                    self.size += len(part)
                    self.wake()
        finally:
            with self.handover:
                self.ended = True
                self.wake()

    def wake(self) -> None:
        """Wake the event loop if it waits for a part (under the handover's lock)."""
        waiter, self.waiter = self.waiter, None
        if waiter is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(resolve, waiter)


def resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # the waiting task may have been cancelled
        waiter.set_result(None)


def is_sync_stream(response: HttpResponseBase) -> bool:
    return bool(response.streaming) and not getattr(response, "is_async", False)
