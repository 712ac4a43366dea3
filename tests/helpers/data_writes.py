"""A project that writes in its own tree while it serves, and a view that imports lazily.

``install(project)`` adds ``lazymods`` (``LAZY_MODULES`` small modules no one imports at
start-up) and ``demo/lazy_views.py``, routed at ``/lazy/``: each request imports the next
``PER_REQUEST`` of them and answers the worker's pid. :class:`DataWriter` writes what running
projects write beside their code, from a thread: django-debug-toolbar's file cache
(``toolbar-cache/*.djcache``), a log, and the SQLite database with its journal.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
import uuid
from pathlib import Path

LAZY_MODULES = 600
PER_REQUEST = 25
#: Seconds between two rounds of writes: each round lands in a batch of its own (the watcher
#: settles for 20 ms), so the workers are asked about many batches.
WRITE_PACE = 0.03

MODULE = '''"""Lazily imported module number {n}."""


class Thing{n}:
    value = {n}

    def twice(self):
        return self.value * 2


def make():
    return Thing{n}().twice()
'''

VIEWS = """
import importlib
import os

from django.http import JsonResponse

from lazymods import COUNT, PER_REQUEST


def lazy(request):
    first = int(request.GET.get("from", 0))
    for n in range(first, first + PER_REQUEST):
        importlib.import_module(f"lazymods.m{n % COUNT}")
    return JsonResponse({"pid": os.getpid()})
"""

ROUTE = """
from demo import lazy_views  # noqa: E402

urlpatterns.append(path("lazy/", lazy_views.lazy))
"""


def install(project: Path, switch_interval: float | None = None) -> Path:
    """Add the lazy modules and the view to ``project``; the view's module (a file to edit).

    ``switch_interval``: seconds between the interpreter's thread switches in every process of
    the server (``sys.setswitchinterval``, set by the settings): a race between threads shows in
    fewer starts the more often they switch.
    """
    if switch_interval is not None:
        settings = project / "testproject" / "settings.py"
        settings.write_text(
            settings.read_text() + f"\nimport sys\n\nsys.setswitchinterval({switch_interval!r})\n"
        )
    package = project / "lazymods"
    package.mkdir()
    (package / "__init__.py").write_text(f"COUNT = {LAZY_MODULES}\nPER_REQUEST = {PER_REQUEST}\n")
    for n in range(LAZY_MODULES):
        (package / f"m{n}.py").write_text(MODULE.format(n=n))
    views = project / "demo" / "lazy_views.py"
    views.write_text(VIEWS)
    urls = project / "testproject" / "urls.py"
    urls.write_text(urls.read_text() + ROUTE)
    return views


class DataWriter:
    """Writes a cache file, a log line and a database row per round until stopped."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.rounds = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="data-writer")

    def __enter__(self) -> DataWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        cache = self.project / "toolbar-cache"
        logs = self.project / "logs"
        cache.mkdir(exist_ok=True)
        logs.mkdir(exist_ok=True)
        try:
            database = sqlite3.connect(self.project / "db.sqlite3", isolation_level=None)
            # The rollback journal (sqlite's default) is created and deleted by every write.
            database.execute("PRAGMA journal_mode=DELETE")
            database.execute("CREATE TABLE IF NOT EXISTS written (n INTEGER, note TEXT)")
            for n in itertools.count():
                if self._stop.is_set():
                    break
                (cache / f"{uuid.uuid4().hex}.djcache").write_bytes(b"\x80\x05" + bytes(512))
                with (logs / "server.log").open("a") as log:
                    log.write(f"round {n}\n")
                database.execute("BEGIN")
                database.execute("INSERT INTO written VALUES (?, ?)", (n, "x" * 64))
                database.execute("COMMIT")
                self.rounds = n + 1
                time.sleep(WRITE_PACE)  # pacing the load, not waiting for anything
            database.close()
        except BaseException as error:  # the test reports it
            self.error = error
