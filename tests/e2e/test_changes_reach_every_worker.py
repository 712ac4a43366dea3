"""A change handled without a restart reaches every process that serves requests.

Django's ``file_changed`` receivers reset a process's own caches (template loaders,
translations, django-browser-reload's reload flag), so each serving process must run them: each
of ``--workers N`` and, with gunicorn, each of gunicorn's workers. Every test runs a real server
on a copy of ``testproject`` with a small app added: a view that tells which process answered,
what it renders and translates and how often its own ``file_changed`` receiver ran. Requests use
a new connection each, so they spread over the workers.
"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.gettext_mo import write_mo
from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.process_models import SPAWN
from tests.helpers.procfs import holder
from tests.helpers.server import EventStream, Server

#: Fresh requests in a row that must all show an edit (and every serving process among them).
STREAK = 30
GREETING = "every worker greeting"
PING = '"type": "ping"'
RELOAD = '"type": "reload"'

APP_CONFIG = """
import time
from pathlib import Path

from django.apps import AppConfig

COUNTED = Path(__file__).resolve().parent / "counted"
STUCK = Path(__file__).resolve().parent / "stuck"
#: How often this process's file_changed receiver handled a change.
CALLS = {"count": 0}
#: Whether the project's own gunicorn post_fork hook ran in this process.
FORK_HOOK = {"ran": False}


def watch_counted(sender, **kwargs):
    sender.watch_dir(COUNTED, "*.txt")
    sender.watch_dir(STUCK, "*.txt")


def count_change(sender, file_path, **kwargs):
    parent = Path(file_path).resolve().parent
    if parent == COUNTED:
        CALLS["count"] += 1
        return True
    if parent == STUCK:
        time.sleep(3600)  # a receiver that never returns
    return None


def record_fork(server, worker):
    FORK_HOOK["ran"] = True


class EveryWorkerConfig(AppConfig):
    name = "everyworker"

    def ready(self):
        from django.utils.autoreload import autoreload_started, file_changed

        autoreload_started.connect(watch_counted)
        file_changed.connect(count_change)
"""

VIEWS = f'''
import os

from django.http import JsonResponse
from django.template.loader import render_to_string
from django.utils import translation

from everyworker.apps import CALLS, FORK_HOOK


def probe(request):
    with translation.override("fr"):
        greeting = translation.gettext("{GREETING}")
    return JsonResponse(
        {{
            "pid": os.getpid(),
            "template": render_to_string("demo/fragment.html").strip(),
            "greeting": greeting,
            "count": CALLS["count"],
            "fork_hook": FORK_HOOK["ran"],
        }}
    )
'''

Probe = dict[str, Any]


def add_probe_app(project: Path) -> None:
    """Add the ``everyworker`` app, its locale and its counted directory to ``project``."""
    app = project / "everyworker"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "apps.py").write_text(textwrap.dedent(APP_CONFIG))
    (app / "views.py").write_text(textwrap.dedent(VIEWS))
    (app / "counted").mkdir()
    (app / "counted" / "notes.txt").write_text("0\n")
    (app / "stuck").mkdir()
    (app / "stuck" / "notes.txt").write_text("0\n")
    write_mo(mo_path(project), {GREETING: "bonjour v1"})
    settings = project / "testproject" / "settings.py"
    settings.write_text(
        settings.read_text()
        + '\nINSTALLED_APPS.append("everyworker")\n'
        # The project's own gunicorn hook: asgiserve's run beside it.
        + 'ASGISERVE["OPTIONS"] = {"gunicorn": {"post_fork": "everyworker.apps.record_fork"}}\n'
    )
    urls = project / "testproject" / "urls.py"
    urls.write_text(
        urls.read_text()
        + "\nfrom everyworker.views import probe  # noqa: E402\n"
        + 'urlpatterns.append(path("every/", probe))\n'
    )


def mo_path(project: Path) -> Path:
    return project / "everyworker" / "locale" / "fr" / "LC_MESSAGES" / "django.mo"


def fresh_probe(server: Server) -> Probe | None:
    """The probe view's answer on a new connection, or ``None`` while nothing answers."""
    response = server.try_get("/every/")
    if response is None or response.status_code != 200:
        return None
    answer: Probe = response.json()
    return answer


def serving_processes(server: Server, count: int) -> dict[int, Probe]:
    """The first answer of each of the ``count`` processes that serve."""
    seen: dict[int, Probe] = {}

    def all_seen() -> bool:
        probe = fresh_probe(server)
        if probe is not None:
            seen.setdefault(probe["pid"], probe)
        return len(seen) >= count

    wait_for(all_seen, what=f"answers from {count} serving processes")
    assert len(seen) == count, (seen, server.output)
    return seen


def wait_everywhere(
    server: Server, pids: set[int], shows: Callable[[Probe], bool], what: str
) -> float:
    """Poll fresh requests until ``STREAK`` in a row show the edit, with every one of ``pids``
    among those that did; the seconds from the call to the first answer of that streak."""
    started = time.monotonic()
    streak, streak_started = 0, started
    shown: set[int] = set()
    last: Probe | None = None
    while True:
        probe = fresh_probe(server)
        answered = time.monotonic()
        if probe is not None and shows(probe):
            if streak == 0:
                streak_started = answered
            streak += 1
            shown.add(probe["pid"])
            assert probe["pid"] in pids, f"a new process answered: {probe}\n{server.output}"
        else:
            streak, last = 0, probe
        if streak >= STREAK and shown >= pids:
            return streak_started - started
        if answered - started > DEADLINE:
            pytest.fail(
                f"{what}: not shown by every process within {DEADLINE:.0f}s "
                f"(last stale answer {last}, shown by {sorted(shown)} of {sorted(pids)})\n"
                f"{server.output}"
            )


def streams_in_every_process(server: Server, pids: set[int]) -> dict[int, list[EventStream]]:
    """django-browser-reload event streams, at least one held by each of ``pids``."""
    by_pid: dict[int, list[EventStream]] = {}
    for _attempt in range(8):
        if set(by_pid) >= pids:
            break
        batch = [
            EventStream(
                server.url + "/__reload__/events/", {"Accept": "text/event-stream"}, DEADLINE
            )
            for _ in pids
        ]
        for stream in batch:
            wait_for(lambda s=stream: s.count(PING) or s.ended.is_set(), what="a ping")
            assert not stream.ended.is_set(), (stream.error, server.output)
            pid = wait_for(
                lambda s=stream: holder(server.port, s.client_port, pids),
                what="the process holding an event stream",
            )
            by_pid.setdefault(pid, []).append(stream)
    assert set(by_pid) == pids, f"streams reached {sorted(by_pid)} of {sorted(pids)}"
    return by_pid


@pytest.mark.parametrize(
    ("workers", "model"), [(1, ()), (2, ()), (2, SPAWN)], ids=["1", "2", "2-spawn"]
)
def test_handled_changes_reach_every_serving_process(start, project, backend, workers, model):
    add_probe_app(project)
    server = start(
        "--backend", backend, "--workers", str(workers), *model,
        env={"ASGISERVE_DEMO_BROWSER_RELOAD": "1"},
    ).wait_serving("/every/")  # fmt: skip
    first = serving_processes(server, workers)
    pids = set(first)
    assert {p["template"] for p in first.values()} == {"template v1"}
    assert {p["greeting"] for p in first.values()} == {"bonjour v1"}
    assert {p["fork_hook"] for p in first.values()} == {backend == "gunicorn"}
    streams = streams_in_every_process(server, pids)
    assert not any(s.count(RELOAD) for group in streams.values() for s in group)

    fragment = project / "demo" / "templates" / "demo" / "fragment.html"
    written = time.monotonic()
    fragment.write_text("template v2\n")
    shown_after = time.monotonic() - written
    shown_after += wait_everywhere(
        server, pids, lambda p: p["template"] == "template v2", "a template edit"
    )
    print(f"\n{backend} --workers {workers}: template edit shown everywhere in {shown_after:.3f}s")
    for pid, group in streams.items():
        wait_for(
            lambda group=group: any(s.count(RELOAD) for s in group),
            what=f"a reload event from process {pid}",
        )

    write_mo(mo_path(project), {GREETING: "bonjour v2"})
    wait_everywhere(server, pids, lambda p: p["greeting"] == "bonjour v2", "a .mo edit")

    counts = {pid: probe["count"] for pid, probe in first.items()}
    (project / "everyworker" / "counted" / "notes.txt").write_text("1\n")
    wait_everywhere(
        server, pids, lambda p: p["count"] > counts[p["pid"]], "a change the receiver handles"
    )
    assert "reloading" not in server.output, server.output
    assert "Traceback" not in server.output, server.output


def test_a_stuck_receiver_costs_a_restart_not_the_update(start, project, backend):
    add_probe_app(project)
    server = start("--backend", backend, "--workers", "2").wait_serving("/every/")
    old = set(serving_processes(server, 2))

    # Its receiver never returns in any process: the wait for answers is bounded, and a
    # process that gives none counts as needing a restart.
    (project / "everyworker" / "stuck" / "notes.txt").write_text("1\n")
    server.wait_output("reloading")
    # The old workers' receivers still hang: they are ended once the grace period is over.
    wait_for(lambda: not old & set(server.group_pids()), what="the old workers to exit")
    new = set(serving_processes(server, 2))
    assert not new & old, (old, new)

    # The new workers handle the next change without a restart, every one of them.
    fragment = project / "demo" / "templates" / "demo" / "fragment.html"
    fragment.write_text("template v2\n")
    wait_everywhere(server, new, lambda p: p["template"] == "template v2", "a template edit")
