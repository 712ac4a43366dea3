"""Views that query PostgreSQL on every path, added to a test's copy of ``testproject``.

``install(project, cluster, prefix, fast=..., runserver=...)`` creates three databases in the
test cluster, one per alias, each with its own connection policy:

* ``default``: ``CONN_MAX_AGE = 0`` (Django's default: a connection per request);
* ``kept``: ``CONN_MAX_AGE = 60`` with ``CONN_HEALTH_CHECKS``;
* ``forever``: ``CONN_MAX_AGE = None``, no health checks (a dead connection fails one request);

and routes ``demo/db_views.py`` under ``/db/``: a sync view, a sync streaming response whose
generator queries per chunk, an async view querying through ``sync_to_async``, a sync view whose
streaming response is an async generator querying through ``sync_to_async``, a ``FileResponse``
whose file queries on each read, all taking ``?alias=`` and ``?tag=``; and the media files through
``static()`` (Django's ``serve`` view, a ``FileResponse``). Each body line a query made says
``WORKER-PID THREAD BACKEND-PID``, and the body ends with ``end``. ``request_started`` and
``request_finished`` append ``started|finished TAG WORKER-PID THREAD`` to :func:`signal_log`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.helpers.postgres import Cluster

ALIASES = ("default", "kept", "forever")
VIEWS_PATHS = ("sync", "stream", "async", "async-stream", "file")
#: Query lines in each body (one per chunk for the streaming ones).
LINES = {"sync": 1, "stream": 3, "async": 1, "async-stream": 3, "file": 3}
MEDIA_FILE = "notes.txt"
MEDIA_TEXT = "a media file served by django.views.static.serve\n" * 2000

VIEWS = """
import os
import threading

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.db import connections
from django.http import FileResponse, HttpResponse, StreamingHttpResponse

CHUNKS = 3
LOG = os.path.join(settings.BASE_DIR, "db-signals.log")
_current = threading.local()


def _append(event, tag):
    line = f"{event} {tag} {os.getpid()} {threading.current_thread().name}\\n"
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write: lines of concurrent requests do not mix
    finally:
        os.close(fd)


def _tag(scope=None, environ=None, **kwargs):
    if scope is not None:
        query = scope.get("query_string", b"").decode()
    else:
        query = (environ or {}).get("QUERY_STRING", "")
    return dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("tag", "-")


def _started(sender, **kwargs):
    _current.tag = _tag(**kwargs)
    _append("started", _current.tag)


def _finished(sender, **kwargs):
    # The request this thread started last: another thread's request_finished tells on itself.
    _append("finished", getattr(_current, "tag", "-"))


signals.request_started.connect(_started)
signals.request_finished.connect(_finished)


def _line(alias):
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    return f"{os.getpid()} {threading.current_thread().name} {backend}\\n"


def sync_view(request):
    return HttpResponse(_line(request.GET["alias"]) + "end\\n", content_type="text/plain")


def stream(request):
    alias = request.GET["alias"]

    def lines():
        for _ in range(CHUNKS):
            yield _line(alias)
        yield "end\\n"

    return StreamingHttpResponse(lines(), content_type="text/plain")


async def async_view(request):
    line = await sync_to_async(_line)(request.GET["alias"])
    return HttpResponse(line + "end\\n", content_type="text/plain")


def async_stream(request):
    alias = request.GET["alias"]

    async def lines():
        for _ in range(CHUNKS):
            yield await sync_to_async(_line)(alias)
        yield "end\\n"

    return StreamingHttpResponse(lines(), content_type="text/plain")


class QueryingFile:
    \"\"\"A file whose reads query the database: its thread is the one iterating the body.\"\"\"

    def __init__(self, alias):
        self.alias = alias
        self.reads = 0

    def read(self, size=-1):
        self.reads += 1
        if self.reads <= CHUNKS:
            return _line(self.alias).encode()
        return b"end\\n" if self.reads == CHUNKS + 1 else b""


def file(request):
    return FileResponse(QueryingFile(request.GET["alias"]), content_type="text/plain")
"""

URLS = """
from django.urls import path

from demo import db_views as v

urlpatterns = [
    path("sync/", v.sync_view),
    path("stream/", v.stream),
    path("async/", v.async_view),
    path("async-stream/", v.async_stream),
    path("file/", v.file),
]
"""


@dataclass(frozen=True)
class Databases:
    """The test cluster's database behind each alias."""

    cluster: Cluster
    names: dict[str, str]

    def connections(self, alias: str) -> list[int]:
        """Backend pids connected to ``alias``'s database now."""
        return self.cluster.backends(self.names[alias])


def signal_log(project: Path) -> Path:
    return project / "db-signals.log"


def install(
    project: Path, cluster: Cluster, prefix: str, *, fast: bool = True, runserver: bool = False
) -> Databases:
    """Point ``project`` at new databases in ``cluster`` (named ``PREFIX_ALIAS``) and add the
    views; ``runserver``: ``manage.py runserver`` is Django's own (the oracle)."""
    names = {alias: cluster.create_database(f"{prefix}_{alias}") for alias in ALIASES}
    options = {
        "default": {"CONN_MAX_AGE": 0},
        "kept": {"CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True},
        "forever": {"CONN_MAX_AGE": None},
    }
    databases = {
        alias: cluster.django_settings(names[alias], **options[alias]) for alias in ALIASES
    }
    demo = project / "demo"
    (demo / "db_views.py").write_text(VIEWS)
    (demo / "db_urls.py").write_text(URLS)
    urls = project / "testproject" / "urls.py"
    urls.write_text(
        urls.read_text()
        + "\nfrom django.conf.urls.static import static\n"
        + 'urlpatterns.append(path("db/", include("demo.db_urls")))\n'
        + "urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)\n"
    )
    media = project / "media"
    media.mkdir(exist_ok=True)
    (media / MEDIA_FILE).write_text(MEDIA_TEXT)
    settings = project / "testproject" / "settings.py"
    settings.write_text(
        settings.read_text()
        + f"\nDATABASES = {databases!r}"
        + f'\nASGISERVE["SYNC_FAST_PATH"] = {fast!r}'
        + f'\nASGISERVE["RUNSERVER"] = {not runserver!r}\n'
    )
    return Databases(cluster, names)
