"""Static files as runserver serves them, but streamed from disk in chunks.

Files are found with Django's staticfiles finders (so ``STATICFILES_DIRS``, app ``static/``
directories and path checks are Django's own). Found files are streamed; anything else (a miss,
a directory, a path escaping the static roots) goes to Django's ``ASGIStaticFilesHandler`` so its
404 page stays exactly Django's. Django's handler alone would read a whole file into memory first.
Where Django's handler or finders lack what this relies on (see
:mod:`django_asgiserve.upstream.django`), Django's handler serves every static file.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import posixpath
import stat
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import cast
from urllib.parse import unquote, urlparse

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.exceptions import SuspiciousFileOperation
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.utils.http import content_disposition_header, http_date, parse_http_date_safe

from django_asgiserve.asgi.types import ASGIApp, Receive, Scope, Send
from django_asgiserve.upstream import django as django_internals

CHUNK_SIZE = 256 * 1024


class DjangoStaticFiles(ASGIStaticFilesHandler):
    """Django's handler, except that a path escaping the static roots (``/static/../x.py``, or
    a symlink out of them) is a 404 like any missing file; Django's own lets
    ``SuspiciousFileOperation`` escape as an unhandled exception (a 500 and a traceback on the
    console) and serves whatever a symlink points to."""

    def __init__(self, app: ASGIHandler, inside: Callable[[Path], bool]) -> None:
        super().__init__(app)
        self.inside = inside

    def serve(self, request: HttpRequest) -> HttpResponse | FileResponse:
        try:
            match = finders.find(posixpath.normpath(self.file_path(request.path)).lstrip("/"))
            if match and not self.inside(Path(match if isinstance(match, str) else match[0])):
                raise SuspiciousFileOperation(f"{request.path!r} leads out of the static roots")
            return super().serve(request)
        except SuspiciousFileOperation as error:
            raise Http404(f"{request.path!r} could not be found") from error


class StaticFiles:
    """Serve ``STATIC_URL`` from the staticfiles finders; hand everything else to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.streams = django_internals.static_hooks_supported()
        # Django's handler wraps any ASGI app and takes any server's scope and messages; its
        # stubs narrow them to an ASGIHandler, a dict and Mappings.
        wrapped = cast(ASGIHandler, app)
        handler = (
            DjangoStaticFiles(wrapped, self.inside_static_roots)
            if self.streams
            else ASGIStaticFilesHandler(wrapped)
        )
        self.django_handler = cast(ASGIApp, handler)
        self.prefix = urlparse(settings.STATIC_URL or "").path
        self.remote = bool(urlparse(settings.STATIC_URL or "").netloc)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.remote or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        if not self.streams:
            await self.django_handler(scope, receive, send)
            return
        found = await asyncio.to_thread(self.find, scope["path"][len(self.prefix) :])
        if found is None or scope["method"] not in ("GET", "HEAD"):
            await self.django_handler(scope, receive, send)
            return
        await self.send_file(scope, send, *found)

    def find(self, relative_url: str) -> tuple[Path, os.stat_result] | None:
        relative = posixpath.normpath(unquote(relative_url)).lstrip("/")
        try:
            match = finders.find(relative)
        except SuspiciousFileOperation:
            return None
        if not match:
            return None
        path = Path(match if isinstance(match, str) else match[0])
        try:
            stat_result = path.stat()
        except OSError:
            return None
        if not stat.S_ISREG(stat_result.st_mode) or not self.inside_static_roots(path):
            return None
        return path, stat_result

    @cached_property
    def static_roots(self) -> tuple[Path, ...]:
        """The real directories the finders serve from (fixed for a worker's life)."""
        roots = []
        for finder in finders.get_finders():
            roots += [Path(root).resolve() for root in django_internals.finder_roots(finder)]
        return tuple(roots)

    def inside_static_roots(self, path: Path) -> bool:
        """Refuse files that only a symlink makes reachable from outside the static roots."""
        real = path.resolve()
        return any(real.is_relative_to(root) for root in self.static_roots)

    async def send_file(self, scope: Scope, send: Send, path: Path, st: os.stat_result) -> None:
        headers = dict(scope.get("headers", []))
        since = headers.get(b"if-modified-since")
        if since is not None:
            parsed = parse_http_date_safe(since.decode("latin-1"))
            if parsed is not None and int(st.st_mtime) <= parsed:
                await send({"type": "http.response.start", "status": 304, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        # The headers of Django's static view (django.views.static.serve), as runserver sends
        # them: its FileResponse names the file, inline.
        content_type, encoding = mimetypes.guess_type(str(path))
        disposition = content_disposition_header(False, path.name) or ""
        response_headers = [
            (b"content-type", (content_type or "application/octet-stream").encode()),
            (b"content-length", str(st.st_size).encode()),
            (b"last-modified", http_date(st.st_mtime).encode()),
            (b"content-disposition", disposition.encode("latin-1")),
        ]
        if encoding:
            response_headers.append((b"content-encoding", encoding.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
            return
        with path.open("rb") as file:
            while True:
                chunk = await asyncio.to_thread(file.read, CHUNK_SIZE)
                more = len(chunk) == CHUNK_SIZE
                await send({"type": "http.response.body", "body": chunk, "more_body": more})
                if not more:
                    return
