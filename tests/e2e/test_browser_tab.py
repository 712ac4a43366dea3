"""An open browser tab follows every edit by itself (django-browser-reload, or the error page's
own listener), on every backend; and a tab's reload listener never holds a stopping worker.

The walk-through runs in real headless Chromium (``-m browser``); the rest speaks HTTP.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.browser import chromium, page_text, wait_for_text  # noqa: F401 - a fixture
from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.server import EventStream, Server

BROWSER_RELOAD = {"ASGISERVE_DEMO_BROWSER_RELOAD": "1"}
ORIGINAL = 'MESSAGE = "hello from testproject"'
EVENTS = "/__reload__/events/"
ACCEPT_STREAM = {"Accept": "text/event-stream"}


def write(path: Path, text: str) -> None:
    """Replace ``path``'s content in one rename, as editors that save atomically do."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    write(path, text.replace(old, new))


def listening(driver: object) -> None:
    """Wait until the tab's django-browser-reload listener can hear the next change.

    It takes the version of the code from the first ping of its stream, and a code change made
    before that would go unnoticed (under runserver too). It runs in a SharedWorker the page
    cannot see into: wait until that worker runs, then for a round trip from the page to the
    server (not through django-browser-reload's stream: its streams share one "reload" flag per
    process, and one a probe left open could take it); by then the listener, connected first,
    has its ping.
    """
    wait_for(lambda: listener_running(driver), what="django-browser-reload's SharedWorker")
    answered = driver.execute_async_script(  # type: ignore[attr-defined]
        """
        const done = arguments[arguments.length - 1];
        fetch("/sync/").then(() => done("answered"), () => done("error"));
        """
    )
    assert answered == "answered", answered


def listener_running(driver: object) -> bool:
    targets = driver.execute_cdp_cmd("Target.getTargets", {})["targetInfos"]  # type: ignore[attr-defined]
    return any(
        target["type"] == "shared_worker" and target["url"].endswith("/reload-worker.js")
        for target in targets
    )


@pytest.mark.browser
@pytest.mark.parametrize("workers", [1, 2])
def test_an_open_tab_follows_every_edit(start, project, backend, workers, chromium):  # noqa: F811
    server = start("--backend", backend, "--workers", str(workers), env=BROWSER_RELOAD)
    follow_every_edit(server, project, chromium)


@pytest.mark.browser
def test_an_open_tab_follows_every_edit_with_spawned_workers(start, project, chromium):  # noqa: F811
    server = start("--backend", "uvicorn", "--process-model", "spawn", env=BROWSER_RELOAD)
    follow_every_edit(server, project, chromium)


def follow_every_edit(server: Server, project: Path, driver: Any) -> None:
    """Template, view, models, breaking and fixing edits, each shown by the open tab itself."""
    server.wait_serving()
    driver.set_script_timeout(DEADLINE)
    driver.get(server.url + "/")
    wait_for_text(driver, "hello from testproject", DEADLINE, "the first page")
    listening(driver)
    views = project / "demo" / "views.py"

    def step(what: str, path: Path, old: str, new: str, shown: str) -> None:
        edit(path, old, new)
        wait_for_text(driver, shown, DEADLINE, f"after the {what}:\n{server.output[-3000:]}")

    index = project / "demo" / "templates" / "demo" / "index.html"
    step(
        "template edit",
        index,
        "<h1>django-asgiserve demo</h1>",
        "<h1>template two</h1>",
        "template two",
    )
    listening(driver)
    step(
        "view edit",
        views,
        ORIGINAL,
        'from demo import models\n\nMESSAGE = getattr(models, "MARK", "view two")',
        "view two",
    )
    listening(driver)
    # The second code edit too: the first one after start-up is the easy one.
    step("second view edit", views, '"MARK", "view two"', '"MARK", "view three"', "view three")
    listening(driver)
    step(
        "models edit",
        project / "demo" / "models.py",
        "class Note(",
        'MARK = "models two"\n\n\nclass Note(',
        "models two",
    )
    listening(driver)
    step("breaking edit", views, "\ndef index(", "\ndef broken(:\n\n\ndef index(", "SyntaxError")
    step("fixing edit", views, "\ndef broken(:\n", '\nMESSAGE = "fixed"\n', "fixed")
    assert "SyntaxError" not in page_text(driver)


# -- without a browser ------------------------------------------------------------------------


def break_views(project: Path) -> None:
    edit(project / "demo" / "views.py", "\ndef index(", "\ndef broken(:\n\n\ndef index(")


def test_broken_code_answers_the_listener_with_pings(start, project):
    """While the code is broken, django-browser-reload's listener gets a live event stream (it
    reloads the tab onto the error page), not the error page once per retry."""
    server = start("--backend", "uvicorn", env=BROWSER_RELOAD).wait_serving()
    before = EventStream(server.url + EVENTS, headers=ACCEPT_STREAM)
    wait_for(lambda: before.count('"type": "ping"'), what="a ping")
    break_views(project)
    wait_for(lambda: server.get("/").status_code == 500, what="the error page")

    during = EventStream(server.url + EVENTS, headers=ACCEPT_STREAM)
    wait_for(lambda: during.count('"type": "ping"') >= 2 or during.ended.is_set(), what="pings")
    assert during.status == 200, (during.lines, server.output)
    old, new = (stream.lines[0] for stream in (before, during))
    assert old.startswith('data: {"type": "ping", "versionId": ') and new != old
    # The 500 page was logged for the one page request, never for the listener.
    assert f'"GET {EVENTS} HTTP/1.1" 500' not in server.output


def test_the_error_page_starts_at_the_project_code_and_listens(start, project):
    server = start("--backend", "uvicorn").wait_serving()
    break_views(project)
    wait_for(lambda: server.get("/").status_code == 500, what="the error page")
    page = server.get("/").text
    assert "SyntaxError" in page
    assert "django_asgiserve/worker.py" not in page, "asgiserve's frames are on the page"
    assert "new EventSource" in page and "/__asgiserve__/generation/" in page
    # DEBUG off: a plain 500, with no script.
    quiet = start("--backend", "uvicorn", env={"ASGISERVE_DEMO_DEBUG": "0"}).wait_serving()
    break_views(quiet.project)
    wait_for(lambda: quiet.get("/").status_code == 500, what="the plain error page")
    assert "EventSource" not in quiet.get("/").text


def test_the_generation_stream_is_answered_with_the_reloader_only(start, project):
    server = start("--backend", "uvicorn").wait_serving()
    stream = EventStream(server.url + "/__asgiserve__/generation/")
    wait_for(lambda: any(line.startswith("data: ") for line in stream.lines), what="the id")
    assert stream.status == 200 and "retry: 100" in stream.lines
    noreload = start("--backend", "uvicorn", "--noreload").wait_serving()
    assert noreload.get("/__asgiserve__/generation/").status_code == 404


#: A view that says when it has started, then takes half a second (less than the grace period).
ANNOUNCED_SLOW_VIEW = """

import asyncio as _asyncio
import pathlib as _pathlib

from django.http import HttpResponse as _HttpResponse


async def _announced_slow(request):
    _pathlib.Path(request.GET["marker"]).touch()
    await _asyncio.sleep(0.5)
    return _HttpResponse("slow done")


urlpatterns.append(path("announced-slow/", _announced_slow))
"""


@pytest.mark.parametrize("how", ["reload", "ctrl-c"])
def test_listener_streams_end_at_once_when_a_worker_stops(start, project, backend, how, tmp_path):
    """Their responses are finished by asgiserve, not cut by the backend at the end of the grace
    period, so a stopping worker does not wait for them; a request really in flight still gets
    the grace."""
    urls = project / "testproject" / "urls.py"
    urls.write_text(urls.read_text() + ANNOUNCED_SLOW_VIEW)
    server = start("--backend", backend, env=BROWSER_RELOAD).wait_serving()
    streams = [
        EventStream(server.url + EVENTS, headers=ACCEPT_STREAM),
        EventStream(server.url + "/__asgiserve__/generation/"),
    ]
    wait_for(lambda: all(s.lines for s in streams), what="both streams to start")
    slow: list[object] = []
    if how == "reload":
        edit(project / "demo" / "views.py", ORIGINAL, 'MESSAGE = "reloaded"')
    else:
        marker = tmp_path / "started"

        def slow_request() -> None:
            try:
                url = f"{server.url}/announced-slow/?marker={marker}"
                slow.append(httpx.get(url, timeout=DEADLINE))
            except httpx.HTTPError as error:
                slow.append(error)

        client = threading.Thread(target=slow_request, daemon=True)
        client.start()
        wait_for(marker.exists, what="the slow request to start in a worker")
        server.signal_group(signal.SIGINT)
    for stream in streams:
        wait_for(stream.ended.is_set, what="the stream to end")
        assert stream.status == 200 and stream.error is None, (stream.error, server.output)
    if how == "ctrl-c":
        assert server.wait_exit() == 0, server.output
        client.join(DEADLINE)
        response = slow[0] if slow else None
        assert isinstance(response, httpx.Response), (response, server.output)
        assert (response.status_code, response.text) == (200, "slow done")


def generation(server) -> str:  # type: ignore[no-untyped-def]
    """The id of the reload the worker answering now belongs to."""
    stream = EventStream(server.url + "/__asgiserve__/generation/")
    found = wait_for(
        lambda: next((line for line in stream.lines if line.startswith("data: ")), None),
        what="the generation",
    )
    return str(found)


def test_a_crashed_workers_replacement_keeps_the_generation_and_a_reload_changes_it(start, project):
    """A tab must not reload because a worker was replaced on the same code, and must reload
    when the code changed."""
    import os

    server = start("--backend", "uvicorn", env=BROWSER_RELOAD).wait_serving()
    first, pid = generation(server), int(server.get("/pid/").text)
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: (r := server.try_get("/pid/")) is not None and r.text not in ("", str(pid)),
        what="the replacement worker",
    )
    assert generation(server) == first, server.output
    edit(project / "demo" / "views.py", ORIGINAL, 'MESSAGE = "reloaded"')
    wait_for(lambda: server.get("/sync/").text == "reloaded", what="the reload")
    assert generation(server) != first
