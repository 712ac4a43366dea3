"""Views that show which path served a request, added to a test's copy of ``testproject``.

``install(project, fast=...)`` writes ``demo/fastpath_views.py``, routes it under ``/fp/`` and
sets ``ASGISERVE["SYNC_FAST_PATH"]`` and ``ATOMIC_REQUESTS``. The gated views talk to a test
through marker files in :func:`gates` (shared by every worker).
"""

from __future__ import annotations

from pathlib import Path

VIEWS = """
import asyncio
import hashlib
import os
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core import signals
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connection, transaction
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from demo.models import Note

#: Request tag -> the threads that ran its request_started, view and request_finished.
THREADS = {}
_current = threading.local()


def _tag_of(scope=None, environ=None, **kwargs):
    query = (scope or {}).get("query_string", b"").decode()
    return dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("tag")


def _started(sender, **kwargs):
    tag = _tag_of(**kwargs)
    _current.tag = tag
    if tag:
        THREADS.setdefault(tag, {})["started"] = threading.current_thread().name


def _finished(sender, **kwargs):
    tag = getattr(_current, "tag", None)
    if tag:
        THREADS.setdefault(tag, {})["finished"] = threading.current_thread().name


signals.request_started.connect(_started)
signals.request_finished.connect(_finished)


def thread(request):
    THREADS.setdefault(request.GET["tag"], {})["view"] = threading.current_thread().name
    return HttpResponse(threading.current_thread().name, headers={"X-Pid": str(os.getpid())})


def threads(request):
    return JsonResponse({**THREADS.get(request.GET["tag"], {}), "pid": str(os.getpid())})


@transaction.non_atomic_requests
async def async_thread(request):
    await asyncio.sleep(0)
    return HttpResponse(threading.current_thread().name)


def stream_sync(request):
    return StreamingHttpResponse(f"line {n}\\n" for n in range(200))


async def _lines():
    for n in range(200):
        yield f"line {n}\\n"


def stream_async(request):
    return StreamingHttpResponse(_lines())


async def _events():
    n = 0
    while True:
        yield f"data: tick {n}\\n\\n"
        n += 1
        await asyncio.sleep(0.05)


def sse(request):
    return StreamingHttpResponse(_events(), content_type="text/event-stream")


@csrf_exempt
def upload(request):
    digest = hashlib.sha256()
    size = 0
    while chunk := request.read(65536):
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse({"size": size, "sha256": digest.hexdigest()})


def boom(request):
    raise ValueError("fastpath boom")


def orm(request):
    with connection.cursor() as cursor:
        for _ in range(5):
            cursor.execute("SELECT 1")
    return JsonResponse(
        {"in_atomic_block": connection.in_atomic_block, "thread": threading.current_thread().name}
    )


GATES = Path(settings.BASE_DIR) / "fp-gates"
GATES.mkdir(exist_ok=True)


class _MarkedResponse(HttpResponse):
    marker = ""

    def close(self):
        super().close()
        (GATES / f"{self.marker}.closed").touch()


def gated(request):
    # Answers once the test opens the gate (30 s at most): the client can leave meanwhile.
    name = request.GET["name"]
    (GATES / f"{name}.started").touch()
    deadline = time.monotonic() + 30
    while not (GATES / f"{name}.open").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    response = _MarkedResponse("x" * 200_000)
    response.marker = name
    return response


async def _ticks(name):
    try:
        n = 0
        while True:
            yield f"data: tick {n}\\n\\n"
            n += 1
            await asyncio.sleep(0.05)
    finally:
        (GATES / f"{name}.closed").touch()


def gated_sse(request):
    return StreamingHttpResponse(_ticks(request.GET["name"]), content_type="text/event-stream")


# ATOMIC_REQUESTS refuses async views.
@transaction.non_atomic_requests
async def async_orm(request):
    try:
        Note.objects.count()
    except SynchronousOnlyOperation:
        return HttpResponse("SynchronousOnlyOperation")
    return HttpResponse("no error")
"""

URLS = """
from django.urls import path

from demo import fastpath_views as v

urlpatterns = [
    path("thread/", v.thread),
    path("threads/", v.threads),
    path("async-thread/", v.async_thread),
    path("stream-sync/", v.stream_sync),
    path("stream-async/", v.stream_async),
    path("sse/", v.sse),
    path("upload/", v.upload),
    path("boom/", v.boom),
    path("orm/", v.orm),
    path("async-orm/", v.async_orm),
    path("gated/", v.gated),
    path("gated-sse/", v.gated_sse),
]
"""


def gates(project: Path) -> Path:
    """Where the gated views leave their markers (``NAME.started``, ``NAME.closed``) and look
    for the test's (``NAME.open``)."""
    return project / "fp-gates"


def install(project: Path, *, fast: bool) -> None:
    demo = project / "demo"
    (demo / "fastpath_views.py").write_text(VIEWS)
    (demo / "fastpath_urls.py").write_text(URLS)
    urls = project / "testproject" / "urls.py"
    urls.write_text(
        urls.read_text() + '\nurlpatterns.append(path("fp/", include("demo.fastpath_urls")))\n'
    )
    settings = project / "testproject" / "settings.py"
    settings.write_text(
        settings.read_text()
        + f'\nASGISERVE["SYNC_FAST_PATH"] = {fast!r}'
        + '\nDATABASES["default"]["ATOMIC_REQUESTS"] = True\n'
    )
