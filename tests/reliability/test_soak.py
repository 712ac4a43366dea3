"""Soak: many reloads under continuous requests, and what the long-lived processes hold after.

Each round edits a view and waits until the polling client is answered by the new code: 5
warm-up rounds and 15 more on one backend by default, 25 and 500 on every backend with
``--soak``. No request may be refused or fail. The supervisor's and the preloader's open files,
threads, children, inotify watches and memory are read from ``/proc`` after the warm-up and at
the end, each time once the retired workers have exited, and must not grow beyond a small
fixed slack (see ``SLACK``).
"""

from __future__ import annotations

import pytest

from tests.helpers.edits import ORIGINAL, RELOADING, set_message
from tests.helpers.polling import wait_for
from tests.helpers.procfs import Usage, children, parent_pid, usage
from tests.helpers.server import Server
from tests.reliability.probes import Poller

pytestmark = pytest.mark.reliability

#: How much each figure may grow between the warm-up and the end, and why:
#: - fds 0: every channel to a retired worker is closed once that worker is gone.
#: - threads 2: asyncio's default executor (``to_thread``: waiting for a child, scanning a
#:   directory) starts its threads lazily, up to a fixed cap, when calls overlap.
#: - children 0, unreaped 0: each retired process is waited for.
#: - RSS 3 MiB: the allocator keeps freed arenas, and Python's caches (interned strings,
#:   free lists) fill up; a leak of even 6 KiB per reload shows after 500 reloads.
#: - inotify watches 0: an edit creates no directory to watch.
SLACK = Usage(fds=0, threads=2, children=0, zombies=0, rss_kib=3 * 1024, watches=0)


def grown(before: Usage, after: Usage) -> list[str]:
    """The figures that grew by more than ``SLACK``."""
    return [
        f"{name} {getattr(before, name)} -> {getattr(after, name)}"
        for name in Usage.FIELDS
        if getattr(after, name) > getattr(before, name) + getattr(SLACK, name)
    ]


def settled(server: Server) -> tuple[int, int] | None:
    """The supervisor's and the preloader's pids once the retired workers are gone: the
    supervisor has one child (the preloader), the preloader one (the worker), neither has one
    left to reap, and no process of the group has lost its parent."""
    pids = set(server.group_pids())
    supervisor = server.process.pid
    kids = children(supervisor)
    if len(kids) != 1 or kids[0][1] == "Z":
        return None
    preloader = kids[0][0]
    grandchildren = children(preloader)
    if len(grandchildren) != 1 or grandchildren[0][1] == "Z":
        return None
    orphans = [pid for pid in pids - {supervisor} if parent_pid(pid) not in pids]
    return None if orphans else (supervisor, preloader)


def test_reloads_under_continuous_requests(start, project, rotating_backend, soak, record):
    backend = rotating_backend
    rounds, warm_up = (500, 25) if soak else (15, 5)
    server = start("--backend", backend).wait_serving()
    views = project / "demo" / "views.py"
    messages = [ORIGINAL, *(f"soak edit number {n:04d}" for n in range(1, warm_up + rounds + 1))]
    known = set(messages)
    figures: dict[str, tuple[Usage, Usage]] = {}

    with Poller(server.url + "/sync/", valid=known.__contains__) as poller:
        for number in range(1, len(messages)):
            new = messages[number]
            set_message(views, messages[number - 1], new, atomic=number % 2 == 0)
            wait_for(lambda new=new: poller.last == (200, new), what=f"{new!r} served")
            if number in (warm_up, len(messages) - 1):
                supervisor, preloader = wait_for(
                    lambda: settled(server), what="the retired workers to exit"
                )
                for name, pid in (("supervisor", supervisor), ("preloader", preloader)):
                    figures.setdefault(name, (usage(pid), usage(pid)))
                    figures[name] = (figures[name][0], usage(pid))
    reloads = sum(RELOADING in line for line in server.stdout.lines)

    growth = {name: grown(*pair) for name, pair in figures.items()}
    record(
        f"view edits under continuous requests ({backend})",
        f"{warm_up} + {rounds} edits ({reloads} reloads); 1 client, a new connection per request",
        f"{poller.summary()}; after the warm-up -> at the end: "
        + "; ".join(f"{name}: {before.change(after)}" for name, (before, after) in figures.items()),
    )
    assert poller.refused == 0 and not poller.failures, (poller.summary(), poller.failures[:5])
    assert not any(growth.values()), growth
    assert server.process.poll() is None
    assert "Traceback" not in server.output, server.output
