"""Reloading on real edits: code, templates, models, broken code and bursts of changes.

Every test runs a real ``manage.py asgiserve`` on a private copy of ``testproject`` and edits its
files the way editors do (in place, or a temporary file renamed over the original). Nothing is
timed: each wait polls the server until what the test expects shows up, against a deadline.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import httpx

from tests.helpers.edits import ORIGINAL, RELOADING, SYNTAX_ERROR, set_message, write
from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.procfs import descends_from, is_alive, parent_pid
from tests.helpers.server import EventStream, Server, body, wait_body, worker_pid

# -- helpers ---------------------------------------------------------------------------------


def reload_lines(server: Server) -> list[str]:
    return [line.strip() for line in server.stdout.lines if RELOADING in line]


def is_preloader(pid: int) -> bool:
    """Whether ``pid`` runs (or was forked from) asgiserve's preloader bootstrap."""
    try:
        return b"django_asgiserve.process.preloader" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


# -- code edits ------------------------------------------------------------------------------


def test_view_edit_is_served_by_a_new_worker(start, project):
    server = start("--backend", "uvicorn").wait_serving()
    views = project / "demo" / "views.py"
    supervisor = server.process.pid
    old_pid = worker_pid(server)

    set_message(views, ORIGINAL, "edited once")
    wait_body(server, "/sync/", "edited once")

    # Once the new code answers, the old code never does again.
    answers = [body(server, "/sync/") for _ in range(10)] + [body(server, "/async/")]
    assert answers == [(200, "edited once")] * 11, server.output
    new_pid = worker_pid(server)
    assert new_pid != old_pid
    assert server.process.poll() is None and server.process.pid == supervisor
    assert descends_from(new_pid, supervisor)
    server.wait_output(f"{views.resolve()} {RELOADING}")
    wait_for(lambda: not is_alive(old_pid), what=f"the old worker {old_pid} to exit")


def test_no_request_fails_while_reloading(start, project, backend, worker_model):
    server = start("--backend", backend, *worker_model).wait_serving()
    views = project / "demo" / "views.py"
    messages = [ORIGINAL, *(f"edit number {n}" for n in range(1, 6))]
    results: list[tuple[int | None, str]] = []
    stop = threading.Event()

    def poll() -> None:
        # No keep-alive: every request opens a new connection, as a browser's reload may.
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=server.url, limits=limits, timeout=DEADLINE) as client:
            while not stop.is_set():
                try:
                    response = client.get("/sync/")
                except httpx.HTTPError as error:
                    results.append((None, repr(error)))
                else:
                    results.append((response.status_code, response.text))

    client = threading.Thread(target=poll, daemon=True)
    client.start()
    try:
        for number, (old, new) in enumerate(itertools.pairwise(messages)):
            set_message(views, old, new, atomic=number % 2 == 1)
            wait_for(lambda new=new: results[-1:] == [(200, new)], what=f"{new!r} served")
    finally:
        stop.set()
        client.join(DEADLINE)
    failures = [result for result in results if result[0] != 200 or result[1] not in messages]
    assert not failures, f"{len(failures)}/{len(results)} failed: {failures[:5]}\n{server.output}"
    # Each edit was answered by the edit before or by itself, never by an older one.
    indices = [messages.index(text) for _status, text in results]
    newest = 0
    for index in indices:
        assert index >= newest - 1, f"old code came back: {indices}"
        newest = max(newest, index)


def test_template_edit_and_unrelated_files_do_not_restart(start, project, process_model):
    server = start("--backend", "uvicorn", *process_model).wait_serving()
    pid = worker_pid(server)
    fragment = project / "demo" / "templates" / "demo" / "fragment.html"
    assert "template v1" in server.get("/template/").text

    write(fragment, "template v2\n", atomic=True)
    wait_body(server, "/template/", "template v2")
    assert worker_pid(server) == pid, "a template edit restarted the worker"

    # Files nothing imports: a note, a stray script, a new file in an app.
    write(project / "notes.txt", "remember the milk\n")
    write(project / "stray_script.py", "print('never imported')\n")
    write(project / "demo" / "unused_module.py", "VALUE = 1\n", atomic=True)
    assert worker_pid(server) == pid
    # The watcher is alive and handled those first: the next view edit is the only reload.
    views = project / "demo" / "views.py"
    # Atomically: a single event, so exactly one reload is expected for it.
    set_message(views, ORIGINAL, "after the no-op edits", atomic=True)
    wait_body(server, "/sync/", "after the no-op edits")
    assert worker_pid(server) != pid
    assert reload_lines(server) == [f"{views.resolve()} {RELOADING}"], server.output
    # The new worker's template loaders see the edited template too.
    assert "template v2" in server.get("/template/").text


def test_models_edit_starts_a_fresh_preloader(start, project):
    server = start("--backend", "uvicorn").wait_serving()
    views = project / "demo" / "views.py"
    models = project / "demo" / "models.py"
    # A view edit first: its worker is forked by a preloader that has booted.
    set_message(views, ORIGINAL, "before the models edit")
    wait_body(server, "/sync/", "before the models edit")
    worker = worker_pid(server)
    preloader = parent_pid(worker)
    assert preloader and preloader != server.process.pid and is_preloader(preloader)

    write(models, models.read_text() + "\nASGISERVE_TEST_CONSTANT = 42\n")
    server.wait_output(f"{models.resolve()} {RELOADING}")
    wait_for(
        lambda: (answer := body(server, "/pid/")) and answer[0] == 200 and int(answer[1]) != worker,
        what="a new worker",
    )
    new_worker = worker_pid(server)
    new_preloader = parent_pid(new_worker)
    assert new_preloader and new_preloader != preloader and is_preloader(new_preloader)
    wait_for(lambda: not is_alive(preloader), what=f"the old preloader {preloader} to exit")
    assert body(server, "/sync/") == (200, "before the models edit")

    # And the fresh preloader forks the next worker, for an ordinary edit.
    set_message(views, "before the models edit", "after the models edit", atomic=True)
    wait_body(server, "/sync/", "after the models edit")
    assert parent_pid(worker_pid(server)) == new_preloader
    assert server.process.poll() is None


# -- broken code -----------------------------------------------------------------------------

READY_ERROR = "asgiserve test: ready() failed"


def broken_apps(apps: Path) -> str:
    """``demo/apps.py`` with a ``ready()`` that raises, whatever the class holds already."""
    return apps.read_text() + (
        f"\n\ndef broken_ready(self):\n    raise RuntimeError({READY_ERROR!r})\n"
        "\n\nDemoConfig.ready = broken_ready\n"
    )


def test_syntax_error_in_a_view_serves_the_traceback_and_recovers(start, project, process_model):
    server = start("--backend", "uvicorn", *process_model).wait_serving()
    views = project / "demo" / "views.py"
    original = views.read_text()

    write(views, original + SYNTAX_ERROR)
    wait_body(server, "/sync/", "SyntaxError", status=500)
    page = server.get("/sync/").text
    assert "views.py" in page
    server.wait_output("SyntaxError")
    assert "Traceback" in server.stderr.text

    write(views, original.replace(ORIGINAL, "fixed the syntax"), atomic=True)
    wait_body(server, "/sync/", "fixed the syntax")
    assert server.get("/async/").text == "fixed the syntax"


def test_exception_in_app_ready_serves_the_traceback_and_recovers(start, project):
    server = start("--backend", "uvicorn").wait_serving()
    apps = project / "demo" / "apps.py"
    original = apps.read_text()

    write(apps, broken_apps(apps))
    wait_body(server, "/sync/", READY_ERROR, status=500)
    assert "RuntimeError" in server.get("/pid/").text
    server.wait_output(READY_ERROR)

    write(apps, original)
    wait_body(server, "/sync/", ORIGINAL)
    # And the recovered server still reloads on edits.
    views = project / "demo" / "views.py"
    set_message(views, ORIGINAL, "after recovering")
    wait_body(server, "/sync/", "after recovering")


def test_broken_code_without_debug_hides_the_traceback(start, project):
    env = {"ASGISERVE_DEMO_DEBUG": "0", "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost"}
    server = start("--backend", "uvicorn", env=env).wait_serving()
    views = project / "demo" / "views.py"
    apps = project / "demo" / "apps.py"
    original_views, original_apps = views.read_text(), apps.read_text()

    write(views, original_views + SYNTAX_ERROR)
    wait_for(lambda: (body(server, "/sync/") or (0,))[0] == 500, what="the error page")
    page = server.get("/sync/").text
    for secret in ("Traceback", "SyntaxError", "views.py", str(project)):
        assert secret not in page, page
    server.wait_output("SyntaxError")  # the console still tells the developer

    write(views, original_views)
    wait_body(server, "/sync/", ORIGINAL)

    write(apps, broken_apps(apps))
    server.wait_output(READY_ERROR)
    wait_for(lambda: (body(server, "/sync/") or (0,))[0] == 500, what="the error page")
    page = server.get("/sync/").text
    for secret in ("Traceback", "RuntimeError", READY_ERROR, "apps.py", str(project)):
        assert secret not in page, page

    write(apps, original_apps)
    wait_body(server, "/sync/", ORIGINAL)


def test_starting_with_broken_code_serves_the_error_then_recovers(start, project):
    views = project / "demo" / "views.py"
    original = views.read_text()
    write(views, original + SYNTAX_ERROR)

    server = start("--backend", "uvicorn").wait_serving()
    answer = body(server, "/sync/")
    assert answer is not None and answer[0] == 500 and "SyntaxError" in answer[1], answer
    assert "SyntaxError" in server.stderr.text

    write(views, original.replace(ORIGINAL, "fixed after starting broken"))
    wait_body(server, "/sync/", "fixed after starting broken")


# -- django-browser-reload -------------------------------------------------------------------


def test_browser_reload_stream_announces_template_edits(start, project):
    server = start(
        "--backend", "uvicorn", env={"ASGISERVE_DEMO_BROWSER_RELOAD": "1"}
    ).wait_serving()
    pid = worker_pid(server)
    stream = EventStream(
        server.url + "/__reload__/events/", headers={"Accept": "text/event-stream"}
    )
    # A ping proves the stream is live in the worker that will hear of the edit.
    wait_for(lambda: stream.count('"type": "ping"') or stream.ended.is_set(), what="a ping")
    assert stream.status == 200 and not stream.ended.is_set(), (stream.error, server.output)
    assert stream.count('"type": "reload"') == 0

    fragment = project / "demo" / "templates" / "demo" / "fragment.html"
    write(fragment, "template v2\n")
    wait_for(
        lambda: stream.count('"type": "reload"') or stream.ended.is_set(), what="a reload event"
    )
    assert stream.count('"type": "reload"') == 1, (stream.lines, stream.error, server.output)
    assert "template v2" in server.get("/template/").text
    assert worker_pid(server) == pid


# -- bursts ----------------------------------------------------------------------------------


def test_a_burst_of_edits_reloads_at_most_twice(start, project):
    server = start("--backend", "uvicorn").wait_serving()
    views = project / "demo" / "views.py"
    existing = sorted(p for p in project.rglob("*.py") if p != views)
    assert len(existing) >= 10

    # One go, as a branch switch or a formatter run would: 30 new modules, every other Python
    # file of the project rewritten (settings and models included) and a view edited.
    for number in range(30):
        write(project / "demo" / f"generated_{number}.py", f"VALUE = {number}\n")
    for path in existing:
        write(path, path.read_text())
    set_message(views, ORIGINAL, "after the burst")
    wait_body(server, "/sync/", "after the burst")

    # A last, separate edit: once it is served the burst has been dealt with completely.
    set_message(views, "after the burst", "after the marker", atomic=True)
    wait_body(server, "/sync/", "after the marker")
    lines = reload_lines(server)
    assert lines[-1] == f"{views.resolve()} {RELOADING}", server.output
    assert 1 <= len(lines) - 1 <= 2, "\n".join(lines)
