"""A view and a system check that write down when they ran, added to a test's copy of
``testproject``.

``install(project)`` writes ``demo/timed_views.py`` (routed at ``/timed/``, answering its
``MESSAGE``): it registers a check (``demo.W900``, a warning) when the URLconf imports it. Each
run of the view appends ``view <pid> <parent pid> <start> <end>`` to the file named by
``ASGISERVE_TEST_TIMES``, each run of the check ``check <pid> <start>`` (``time.monotonic``, the
machine's clock, the same in every process).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VIEWS = """
import os
import time
from pathlib import Path

from django.core import checks
from django.http import HttpResponse

MESSAGE = "first"
TIMES = Path(os.environ["ASGISERVE_TEST_TIMES"])


def write(line):
    with TIMES.open("a") as times:
        times.write(line + "\\n")


@checks.register()
def timed_check(app_configs, **kwargs):
    write(f"check {os.getpid()} {time.monotonic()}")
    return [checks.Warning("the timed check ran", id="demo.W900")]


def timed(request):
    start = time.monotonic()
    # Some work in Python, as a page would do: it shares the interpreter with any thread.
    sum(i * i for i in range(20_000))
    write(f"view {os.getpid()} {os.getppid()} {start} {time.monotonic()}")
    return HttpResponse(MESSAGE)
"""


@dataclass(frozen=True)
class ViewRun:
    pid: int
    parent: int
    start: float
    end: float


@dataclass(frozen=True)
class CheckRun:
    pid: int
    start: float


def install(project: Path) -> Path:
    """Add the view and the check; the path of the times file."""
    (project / "demo" / "timed_views.py").write_text(VIEWS)
    urls = project / "testproject" / "urls.py"
    urls.write_text(
        urls.read_text()
        + "\nfrom demo import timed_views\n"
        + 'urlpatterns.append(path("timed/", timed_views.timed))\n'
    )
    return project / "times.txt"


def read(times: Path) -> tuple[list[ViewRun], list[CheckRun]]:
    """Every run written down so far (a line being written is left for later)."""
    views: list[ViewRun] = []
    checks: list[CheckRun] = []
    text = times.read_text() if times.exists() else ""
    for line in text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]:
        kind, *fields = line.split()
        if kind == "view":
            views.append(ViewRun(int(fields[0]), int(fields[1]), *map(float, fields[2:])))
        elif kind == "check":
            checks.append(CheckRun(int(fields[0]), float(fields[1])))
    return views, checks
