"""A sync streaming body sent over ASGI part by part, each part made in the request's thread.

Django's ``ASGIHandler.send_response`` reads a streaming body through
``StreamingHttpResponse.__aiter__``, which for a sync iterator (a generator, a ``FileResponse``'s
file) warns "StreamingHttpResponse must consume synchronous iterators" and reads the whole body
into a list with one ``sync_to_async`` call: in memory at once, and in whatever thread asgiref
picks outside the request's (on the sync fast path, asgiref's one shared thread, whose database
connection no request ever checks or closes). :class:`ThreadIterated` is the response as
``send_response`` reads it, but with the body iterated one part per hop in the request's own
thread (its lease, ``request_threads.py``), where ``request_started`` ran and ``close()`` will
run; a part is made once the one before has been sent, as a WSGI server writes one and asks for
the next.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from django.http import HttpResponseBase

from django_asgiserve.asgi.leases import Lease


class ThreadIterated:
    """``response`` for ``ASGIHandler.send_response``, its sync body iterated in ``lease``."""

    def __init__(self, response: HttpResponseBase, lease: Lease) -> None:
        self.response = response
        self.lease = lease

    def __getattr__(self, name: str) -> Any:
        # The headers, cookies and status send_response reads first.
        return getattr(self.response, name)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        step = self.lease.hop(next_part)
        parts = await self.lease.run(iter, self.response)
        while (part := await step(parts)) is not None:
            yield part


def next_part(parts: Iterator[bytes]) -> bytes | None:
    """The next part of the body, ``None`` at its end (an empty part is a part)."""
    return next(parts, None)


def is_sync_stream(response: HttpResponseBase) -> bool:
    return bool(response.streaming) and not getattr(response, "is_async", False)
