"""Faults: processes killed, stopped or stuck, and a watched tree that misbehaves.

Signals are real (``kill -9``, ``SIGSTOP``, Ctrl+C to the whole group), stuck code is real
(views written into the test's copy of the project that never return, one of them holding the
GIL with SIGTERM ignored), and the tree is changed as tools change it (``git checkout``,
``rm -rf``, ``chmod``, FIFOs and dangling symlinks). Each scenario ends with the server serving
again, or with nothing left running.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.edits import ORIGINAL, RELOADING, set_message, write
from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.procfs import (
    established_sockets,
    inotify_watches,
    is_alive,
    stat_fields,
    worker_connections,
)
from tests.helpers.server import (
    Server,
    port_is_free,
    wait_body,
    wait_for_nothing_left,
    worker_pid,
)
from tests.reliability.probes import Poller

pytestmark = pytest.mark.reliability

GRACE = 1.0  # the default --graceful-timeout with the reloader
#: When the supervisor ends a stopping worker that has not exited: the grace period, the
#: worker's own margin after it and half a second more (``Supervisor.stop_worker``).
HARD_STOP = GRACE + 0.5 + 0.5
#: Allowance on top of the bounds above for a busy 2-core machine to schedule the processes.
SCHEDULING = 1.5


def reload_count(server: Server) -> int:
    return sum(RELOADING in line for line in server.stdout.lines)


def in_flight(server: Server, path: str) -> tuple[threading.Thread, list[object]]:
    """GET ``path`` on a thread, and wait until the serving worker has the connection."""
    assert server.port is not None
    worker = worker_pid(server)
    before = worker_connections(worker, server.port)
    outcome: list[object] = []

    def get() -> None:
        try:
            outcome.append(httpx.get(server.url + path, timeout=2 * DEADLINE))
        except httpx.HTTPError as error:
            outcome.append(error)

    thread = threading.Thread(target=get, daemon=True)
    thread.start()
    wait_for(lambda: worker_connections(worker, server.port) - before, what=f"{path} accepted")
    return thread, outcome


def gone_within(server: Server, limit: float) -> tuple[float | None, float | None]:
    """Seconds until no process of the group runs and until the port is free (``None``: not
    within ``limit``)."""
    assert server.port is not None
    started = time.monotonic()
    processes = port = None
    while time.monotonic() - started < limit and (processes is None or port is None):
        elapsed = time.monotonic() - started
        if processes is None and not server.group_pids():
            processes = elapsed
        if port is None and port_is_free(server.port):
            port = elapsed
        time.sleep(0.01)
    return processes, port


def seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f} s"


# -- killed and stopped processes ---------------------------------------------------------------


def test_kill_9_of_a_worker_mid_request(start, rotating_backend, record):
    server = start("--backend", rotating_backend, "--skip-checks").wait_serving()
    victim = worker_pid(server)
    thread, outcome = in_flight(server, "/slow/?seconds=20")

    os.kill(victim, signal.SIGKILL)
    thread.join(DEADLINE)
    # The very next request: it waits in the listen backlog until the new worker takes it.
    started = time.monotonic()
    response = server.get("/pid/")
    waited = time.monotonic() - started
    record(
        f"kill -9 of a worker during a 20 s request ({rotating_backend})",
        "1 request in flight, then 1 request",
        f"in-flight request: {type(outcome[0]).__name__ if outcome else 'no answer'}; "
        f"next request: {response.status_code} from a new worker after {waited:.2f} s",
    )
    # The stuck request ends: the connection is cut, or (a sync view on the sync fast path,
    # whose handler returns when the server says the client is gone) the server answers 500.
    assert outcome, outcome
    assert isinstance(outcome[0], httpx.HTTPError) or outcome[0].status_code >= 500, outcome
    assert response.status_code == 200
    assert int(response.text) != victim
    assert server.process.poll() is None


def test_kill_9_of_the_supervisor_frees_everything_within_a_second(start, backend, record):
    server = start("--backend", backend, "--skip-checks").wait_serving()
    wait_for(lambda: len(server.group_pids()) >= 3, what="the preloader and a worker")
    processes = len(server.group_pids())
    thread, outcome = in_flight(server, "/slow/?seconds=20")

    server.process.kill()
    ended, freed = gone_within(server, 5.0)
    thread.join(DEADLINE)
    record(
        f"kill -9 of the supervisor ({backend})",
        f"{processes} processes, 1 request in flight",
        f"every process gone after {seconds(ended)}, port free after {seconds(freed)}",
    )
    assert ended is not None and ended <= 1.0, server.output
    assert freed is not None and freed <= 1.0
    # The stuck request ends: the connection is cut, or (a sync view on the sync fast path,
    # whose handler returns when the server says the client is gone) the server answers 500.
    assert outcome, outcome
    assert isinstance(outcome[0], httpx.HTTPError) or outcome[0].status_code >= 500, outcome


def state(pid: int) -> str:
    fields = stat_fields(pid)
    return fields[0] if fields else "gone"


def test_sigstop_and_sigcont_of_a_worker(start, rotating_backend, record):
    server = start("--backend", rotating_backend, "--skip-checks").wait_serving()
    assert server.port is not None
    worker = worker_pid(server)

    os.kill(worker, signal.SIGSTOP)
    wait_for(lambda: state(worker) == "T", what="the worker to stop")
    waiting: list[httpx.Response | httpx.HTTPError] = []

    def get() -> None:
        try:
            waiting.append(httpx.get(server.url + "/sync/", timeout=DEADLINE))
        except httpx.HTTPError as error:
            waiting.append(error)

    thread = threading.Thread(target=get, daemon=True)
    thread.start()
    wait_for(lambda: waiting or established_sockets(server.port), what="the request to connect")
    assert not waiting, waiting  # no answer while the worker is stopped
    os.kill(worker, signal.SIGCONT)
    thread.join(DEADLINE)
    answered = waiting[0] if waiting else None
    after = server.get("/pid/")

    # Ctrl+C while the worker is stopped: the supervisor ends it once the grace period is over.
    os.kill(worker, signal.SIGSTOP)
    wait_for(lambda: state(worker) == "T", what="the worker to stop again")
    started = time.monotonic()
    server.signal_group(signal.SIGINT)
    code = server.wait_exit()
    took = time.monotonic() - started
    wait_for_nothing_left(server)
    record(
        f"SIGSTOP, SIGCONT of a worker, then Ctrl+C while stopped ({rotating_backend})",
        "1 request made while stopped",
        f"that request: {getattr(answered, 'status_code', answered)!r} after SIGCONT; same "
        f"worker serves after: {int(after.text) == worker}; Ctrl+C: exit {code} after "
        f"{took:.2f} s (a stuck worker is ended at {HARD_STOP:.1f} s)",
    )
    assert isinstance(answered, httpx.Response) and answered.status_code == 200, answered
    assert after.status_code == 200 and int(after.text) == worker
    assert code == 0, server.output
    assert took <= HARD_STOP + SCHEDULING


# -- code that never returns --------------------------------------------------------------------

HANGING_VIEWS = '''"""Views that never return, for the reliability tests."""

import ctypes
import signal


def spin_sync(request):
    while True:
        pass


async def spin_async(request):
    while True:
        pass


async def freeze(request):
    # Deaf to SIGTERM, then asleep in C with the GIL held: not even the worker's own threads
    # (its channel to the supervisor, its hard-stop timer) run again.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctypes.PyDLL(None).sleep(3600)
'''
HANGING_URLS = """
from demo import hanging  # noqa: E402

urlpatterns += [  # noqa: F405
    path("hang/spin-sync/", hanging.spin_sync),
    path("hang/spin-async/", hanging.spin_async),
    path("hang/freeze/", hanging.freeze),
]
"""
HANGS = {
    "spin-sync": "a sync view looping forever (in a thread)",
    "spin-async": "an async view looping forever (blocks the event loop)",
    "freeze": "an async view ignoring SIGTERM and sleeping with the GIL held",
}


def add_hanging_views(project: Path) -> None:
    (project / "demo" / "hanging.py").write_text(HANGING_VIEWS)
    urls = project / "testproject" / "urls.py"
    urls.write_text(urls.read_text() + HANGING_URLS)


@pytest.mark.parametrize("hang", list(HANGS))
def test_a_stuck_worker_is_ended_on_reload_and_on_ctrl_c(
    start, project, rotating_backend, hang, record
):
    add_hanging_views(project)
    server = start("--backend", rotating_backend, "--skip-checks").wait_serving()
    stuck = worker_pid(server)
    thread, outcome = in_flight(server, f"/hang/{hang}/")
    if hang == "freeze":
        os.kill(stuck, signal.SIGTERM)  # ignored: the worker goes on sleeping

    # A reload: the new code is served, and the stuck worker is ended after the grace period.
    edited = time.monotonic()
    set_message(project / "demo" / "views.py", ORIGINAL, "edited while stuck", atomic=True)
    wait_body(server, "/async/", "edited while stuck")
    served = time.monotonic()
    wait_for(lambda: not is_alive(stuck), what=f"the stuck worker {stuck} to be ended")
    ended = time.monotonic()
    thread.join(DEADLINE)

    # Ctrl+C with the new worker stuck the same way.
    again = worker_pid(server)
    in_flight(server, f"/hang/{hang}/")
    started = time.monotonic()
    server.signal_group(signal.SIGINT)
    code = server.wait_exit()
    took = time.monotonic() - started
    wait_for_nothing_left(server)
    record(
        f"{HANGS[hang]} ({rotating_backend})",
        "1 stuck request, then a reload; 1 stuck request, then Ctrl+C",
        f"reload: new code served {served - edited:.2f} s after the edit, stuck worker ended "
        f"{ended - served:.2f} s later; Ctrl+C: exit {code} after {took:.2f} s "
        f"(a stuck worker is ended at {HARD_STOP:.1f} s)",
    )
    # The stuck request ends: the connection is cut, or (a sync view on the sync fast path,
    # whose handler returns when the server says the client is gone) the server answers 500.
    assert outcome, outcome
    assert isinstance(outcome[0], httpx.HTTPError) or outcome[0].status_code >= 500, outcome
    assert ended - served <= HARD_STOP + SCHEDULING
    assert again != stuck
    assert code == 0, server.output
    assert took <= HARD_STOP + SCHEDULING, server.output


# -- a watched tree that misbehaves -------------------------------------------------------------


def odd_files(directory: Path) -> list[str]:
    """Things in the watched tree that cannot be read as files or walked as directories;
    returns what was made."""
    os.mkfifo(directory / "pipe.py")
    (directory / "dangling.py").symlink_to(directory / "missing.py")
    (directory / "loop.py").symlink_to(directory / "loop.py")
    (directory / "root").symlink_to("/", target_is_directory=True)
    made = [
        "a FIFO pipe.py",
        "a dangling symlink dangling.py",
        "a symlink loop loop.py",
        "a symlink to / (never to be walked)",
    ]
    for number in range(20):
        (directory / f"fleeting_{number}").mkdir()
    for number in range(20):
        (directory / f"fleeting_{number}").rmdir()
    made.append("20 directories created and removed at once")
    if os.geteuid() != 0:
        locked = directory / "locked"
        locked.mkdir()
        (locked / "inside.py").write_text("VALUE = 1\n")
        locked.chmod(0)
        made.append("a directory with mode 000")
    return made


def error_name(page: str) -> str:
    """The exception an error page is about (its title)."""
    match = re.search(r"<title>\s*(\w+(?:Error|Exception))", page)
    return match[1] if match else "no exception named"


def test_unreadable_files_in_the_watched_tree(start, project, rotating_backend, record):
    server = start("--backend", rotating_backend, "--skip-checks").wait_serving()
    views = project / "demo" / "views.py"
    original = views.read_text()
    watches = inotify_watches(server.process.pid)

    with Poller(server.url + "/sync/") as poller:
        made = odd_files(project / "demo")
        # Something to wait for: once it is served, the odd files have been dealt with.
        set_message(views, ORIGINAL, "after the odd files", atomic=True)
        wait_for(lambda: poller.last == (200, "after the odd files"), what="the edit served")
    odd_reloads = reload_count(server)
    watches_after = inotify_watches(server.process.pid)
    console = server.output

    # The imported views module itself becomes unreadable.
    if os.geteuid() != 0:
        fault = "demo/views.py chmod 000"
        views.chmod(0)
        os.utime(views)
    else:
        # chmod does not deny root, which the tests may run as.
        fault = "demo/views.py replaced by a dangling symlink (root ignores chmod 000)"
        views.unlink()
        views.symlink_to(project / "demo" / "views_gone.py")
    wait_for(lambda: (server.try_get("/sync/") or httpx.Response(0)).status_code == 500)
    shown = error_name(server.get("/sync/").text)
    if views.is_symlink():
        views.unlink()
    if views.exists():
        views.chmod(0o644)
    write(views, original.replace(ORIGINAL, "readable again"))
    wait_body(server, "/sync/", "readable again")
    if (project / "demo" / "locked").exists():
        (project / "demo" / "locked").chmod(0o755)
    record(
        f"unreadable files ({rotating_backend})",
        f"{', '.join(made)}; then {fault}",
        f"odd files: {poller.summary()}, {odd_reloads} reload (the edit after them), "
        f"inotify watches {watches} -> {watches_after}; unreadable views: 500 page about "
        f"{shown}, served again once readable",
    )
    assert poller.refused == 0 and not poller.failures, poller.failures[:5]
    assert odd_reloads == 1, server.output
    # Nothing new to watch but the directory with mode 000, which cannot be watched.
    assert watches_after <= watches + (os.geteuid() != 0), (watches, watches_after)
    assert "Traceback" not in console, console
    assert server.process.poll() is None


def make_unwritable(path: Path) -> str | None:
    """Make ``path`` unwritable even for its owner; how, or ``None`` when this cannot be done."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        return "chmod 444"
    if shutil.which("chattr") is None:
        return None
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
    return "chattr +i (root ignores chmod 444)" if done.returncode == 0 else None


def make_writable(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    path.chmod(0o644)


def test_a_file_that_cannot_be_written(start, project, rotating_backend, record):
    server = start("--backend", rotating_backend, "--skip-checks").wait_serving()
    views = project / "demo" / "views.py"
    with Poller(server.url + "/sync/") as poller:
        how = make_unwritable(views)
        if how is None:
            pytest.skip("no way to make a file unwritable for root here (no chattr)")
        try:
            with pytest.raises(PermissionError):
                set_message(views, ORIGINAL, "never written")
            # The permission change alone may or may not count as a change: either way the
            # site stays up and keeps its code.
            before_undo = reload_count(server)
        finally:
            make_writable(views)
        set_message(views, ORIGINAL, "written at last", atomic=True)
        wait_for(lambda: poller.last == (200, "written at last"), what="the edit served")
    record(
        f"a watched file that cannot be written ({rotating_backend})",
        f"demo/views.py made unwritable ({how}), a write refused, then made writable and edited",
        f"{poller.summary()}; {before_undo} reloads from the permission change; "
        "the edit after it served",
    )
    assert poller.refused == 0 and not poller.failures, poller.failures[:5]
    assert set(poller.bodies) <= {ORIGINAL, "written at last"}


GIT = ["git", "-c", "user.name=asgiserve tests", "-c", "user.email=tests@example.invalid"]


def git(project: Path, *args: str) -> None:
    subprocess.run([*GIT, *args], cwd=project, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_branch_switch_touching_200_files_reloads_at_most_twice(
    start, project, rotating_backend, record
):
    bulk = project / "demo" / "bulk"
    bulk.mkdir()
    names = [f"module_{n:03d}" for n in range(199)]
    (bulk / "__init__.py").write_text("".join(f"from . import {n}  # noqa\n" for n in names))
    views = project / "demo" / "views.py"
    views.write_text(views.read_text() + "\nfrom demo import bulk  # noqa: E402, F401\n")
    for name in names:
        (bulk / f"{name}.py").write_text("VALUE = 'main'\n")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "main")
    git(project, "checkout", "-q", "-b", "feature")
    for name in names:
        (bulk / f"{name}.py").write_text("VALUE = 'feature'\n")
    set_message(views, ORIGINAL, "on the feature branch")
    git(project, "commit", "-q", "-am", "feature")
    git(project, "checkout", "-q", "main")

    server = start("--backend", rotating_backend, "--skip-checks").wait_serving()
    wait_body(server, "/sync/", ORIGINAL)
    with Poller(server.url + "/sync/") as poller:
        git(project, "checkout", "-q", "feature")  # 200 files: 199 modules and the view
        wait_for(lambda: poller.last == (200, "on the feature branch"), what="the branch served")
        # A last, separate edit: once it is served, the checkout has been dealt with entirely.
        set_message(views, "on the feature branch", "after the checkout", atomic=True)
        wait_for(lambda: poller.last == (200, "after the checkout"), what="the marker served")
    reloads = reload_count(server) - 1
    record(
        f"git checkout touching 200 watched modules ({rotating_backend})",
        "200 files changed by one checkout, under continuous requests",
        f"{reloads} reloads; {poller.summary()}",
    )
    assert 1 <= reloads <= 2, server.output
    assert poller.refused == 0 and not poller.failures, poller.failures[:5]


def test_an_app_directory_deleted_and_recreated_is_still_watched(
    start, project, rotating_backend, record, tmp_path
):
    server = start("--backend", rotating_backend, "--skip-checks").wait_serving()
    demo = project / "demo"
    saved = shutil.copytree(demo, tmp_path / "demo-saved")

    shutil.rmtree(demo)
    wait_for(lambda: (server.try_get("/sync/") or httpx.Response(0)).status_code == 500)
    gone = server.get("/sync/").status_code
    shutil.copytree(saved, demo)
    wait_body(server, "/sync/", ORIGINAL)

    started = time.monotonic()
    set_message(demo / "views.py", ORIGINAL, "edited after recreating", atomic=True)
    wait_body(server, "/sync/", "edited after recreating")
    took = time.monotonic() - started
    template = demo / "templates" / "demo" / "fragment.html"
    write(template, "recreated template\n", atomic=True)
    wait_body(server, "/template/", "recreated template")
    record(
        f"an app directory deleted and recreated ({rotating_backend})",
        "rm -rf demo/, copied back; then a view edit and a template edit in it",
        f"{gone} while gone, served again once back; the view edit served after {took:.2f} s, "
        "the template edit too",
    )
    assert gone == 500
    assert server.process.poll() is None
