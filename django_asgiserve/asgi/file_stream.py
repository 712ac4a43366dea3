"""A ``FileResponse`` on Django's async path (whitenoise's, say), sent without Django's
"StreamingHttpResponse must consume synchronous iterators" warning.

Django's ``ASGIHandler`` iterates a streaming response asynchronously; a ``FileResponse``'s
iterator is synchronous, so Django warns and reads the whole file into a list in a thread
first. Here its file is read chunk by chunk in a thread instead, as it is sent; a
``FileResponse`` over something else than a file (whitenoise's empty body for ``HEAD`` and
``304``) is listed in a thread, as Django would, without the warning. The file is still closed
by the response's ``close()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import IO

from asgiref.sync import sync_to_async
from django.http import FileResponse, HttpResponseBase


async def _read(file: IO[bytes], size: int) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(file.read, size):
        yield chunk


def _as_list(content: Iterable[bytes]) -> list[bytes]:
    return list(content)


async def _listed(content: Iterable[bytes]) -> AsyncIterator[bytes]:
    for part in await sync_to_async(_as_list)(content):
        yield part


def read_in_thread(response: HttpResponseBase) -> HttpResponseBase:
    """``response``, a ``FileResponse``'s content now an asynchronous iterator."""
    if not isinstance(response, FileResponse) or response.is_async:
        return response
    file = response.file_to_stream
    if file is not None:
        response.streaming_content = _read(file, response.block_size)
    else:
        response.streaming_content = _listed(response.streaming_content)
    return response
