"""The process model chosen where it is needed, and the platforms this machine is not.

Fork turns to spawn for the rest of a run when fork proves unsafe (a thread left running by the
project's start-up, a forked worker dying before it loaded), saying why in one line. The platform
simulation (``tests/helpers/platform_simulation``) has real servers take the paths of Windows
(no fork, no ``SO_REUSEPORT``, no SIGHUP, no parent-death signal) and macOS (spawn by default,
one socket shared by the workers): they serve, reload with no refused connection and stop on
Ctrl+C leaving nothing.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.helpers import tiny_project
from tests.helpers.commands import assert_fails_clearly, manage
from tests.helpers.edits import ORIGINAL, set_message
from tests.helpers.hammer import Hammer
from tests.helpers.polling import wait_for
from tests.helpers.process_models import simulated
from tests.helpers.procfs import LISTEN, tcp_sockets
from tests.helpers.server import (
    BANNER_URL,
    Server,
    wait_body,
    wait_for_nothing_left,
    worker_pid,
)

SWITCHED = "Spawning workers from now on: "
#: What the project's start-up does in each case, appended to its settings.
THREAD_AT_IMPORT = """
import threading as _threading
_threading.Thread(target=_threading.Event().wait, daemon=True, name="a-library").start()
"""
#: As a C library that cannot survive a fork: any forked child aborts at once.
ABORT_AFTER_FORK = """
import os as _os
_os.register_at_fork(after_in_child=_os.abort)
"""

#: A spawned worker (``python -c ...``; not the command, whose checks import the URLconf too)
#: takes two minutes to import the URLconf.
SPAWNED_WORKER_LOADS_LONG = """import sys as _sys, time as _time
if _sys.argv[:1] == ["-c"]:
    _time.sleep(120)
"""


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # it has gone
        return b""


def is_spawned(pid: int) -> bool:
    """Whether ``pid`` is a spawned worker (a fresh interpreter, not a fork)."""
    return b"django_asgiserve.process.spawned" in cmdline(pid)


def listening_sockets(port: int) -> int:
    return sum(1 for s in tcp_sockets() if s.state == LISTEN and s.local_port == port)


def reload_with_no_refusal(server: Server, project: Path, text: str) -> None:
    """Edit the view under a hammer: the edit is served and every connection answered 200."""
    assert server.port is not None
    with Hammer(server.port, "/sync/") as hammer:
        wait_for(lambda: len(hammer.answers) > 5, what="answers before the edit")
        set_message(project / "demo" / "views.py", ORIGINAL, text, atomic=True)
        wait_body(server, "/sync/", text)
        served = len(hammer.answers)
        wait_for(lambda: len(hammer.answers) > served + 10, what="answers after the edit")
        # Read before the hammer stops: stopping it gives up the requests it has in flight.
        unanswered, statuses = hammer.unanswered, {answer.status for answer in hammer.answers}
    assert unanswered == 0, server.output
    assert statuses == {200}, server.output


# -- fork proving unsafe ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start_up", "reason"),
    [
        (THREAD_AT_IMPORT, "starting the project left threads running"),
        (ABORT_AFTER_FORK, "a forked worker died before it had loaded"),
    ],
    ids=["thread-at-import", "abort-after-fork"],
)
def test_fork_turns_to_spawn_when_it_proves_unsafe(start, project, start_up, reason):
    settings = project / "testproject" / "settings.py"
    settings.write_text(settings.read_text() + start_up)
    server = start("--backend", "uvicorn").wait_serving()
    server.wait_output(f"{SWITCHED}{reason}, so forking them is not safe.")
    reload_with_no_refusal(server, project, "edited after the switch")
    assert is_spawned(worker_pid(server)), server.output
    assert server.output.count(SWITCHED) == 1, server.output
    assert "Workers: fork" in server.stdout.text


def test_fork_asked_for_stays_fork(start, project):
    settings = project / "testproject" / "settings.py"
    settings.write_text(settings.read_text() + THREAD_AT_IMPORT)
    server = start("--backend", "uvicorn", "--process-model", "fork").wait_serving()
    set_message(project / "demo" / "views.py", ORIGINAL, "edited", atomic=True)
    wait_body(server, "/sync/", "edited")
    assert SWITCHED not in server.output
    assert not is_spawned(worker_pid(server))


def test_an_unknown_process_model_lists_both(project):
    result = manage(project, "asgiserve", "--noreload", "--process-model", "thread")
    assert_fails_clearly(
        result, "argument --process-model: must be one of fork, spawn, not 'thread'.", code=2
    )


# -- the simulated platforms --------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["uvicorn", "hypercorn"])
@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_a_simulated_platform_serves_reloads_and_stops(start, project, platform, backend):
    server = start("--backend", backend, "--workers", "2", env=simulated(platform))
    server.wait_serving()
    assert server.port is not None
    quit_with = "CTRL-BREAK" if platform == "win32" else "CONTROL-C"
    assert f"Quit the server with {quit_with}." in server.stdout.text
    assert "Workers: spawn (--process-model)." in server.stdout.text
    # Neither spreads connections over SO_REUSEPORT twins: one socket for both workers.
    assert listening_sockets(server.port) == 1
    # Two workers (and, once they serve, a spare for each), every one spawned: nothing forks.
    children = [pid for pid in server.group_pids() if pid != server.process.pid]
    assert len(children) >= 2 and all(map(is_spawned, children)), server.output

    reload_with_no_refusal(server, project, f"edited on {platform}")
    assert is_spawned(worker_pid(server))

    server.signal_group(signal.SIGINT)
    assert server.wait_exit() == 0, server.output
    wait_for_nothing_left(server)


def test_fork_on_simulated_macos_shares_one_socket(start):
    env = simulated("darwin")
    server = start("--backend", "uvicorn", "--process-model", "fork", "--workers", "2", env=env)
    server.wait_serving()
    assert server.port is not None
    assert "Workers: fork (--process-model)." in server.stdout.text
    assert listening_sockets(server.port) == 1
    assert not is_spawned(worker_pid(server))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--backend", "gunicorn"),
            "CommandError: The gunicorn backend does not run on Windows (it needs fork). Use one "
            "of: uvicorn, hypercorn, daphne, granian.",
        ),
        (
            ("--process-model", "fork"),
            "CommandError: --process-model fork needs os.fork, which this platform does not "
            "have: use --process-model spawn (the default here).",
        ),
    ],
    ids=["gunicorn", "fork"],
)
def test_simulated_windows_refuses_what_it_cannot_run(project, args, message):
    result = manage(project, "asgiserve", "--noreload", *args, env=simulated("win32"))
    assert_fails_clearly(result, message)


@pytest.mark.parametrize("platform", ["linux", "win32", "darwin"])
def test_a_loading_spawned_worker_ends_with_its_killed_supervisor(start, tmp_path, platform):
    """Where no parent-death signal exists (simulated Windows and macOS), the lifeline alone
    ends a worker that is still loading when the supervisor is killed."""
    tiny = tiny_project.write(tmp_path / "tiny")
    urls = tiny / "testproject" / "urls.py"
    urls.write_text(SPAWNED_WORKER_LOADS_LONG + urls.read_text())
    env = simulated(platform) if platform != "linux" else {}
    server = start("--process-model", "spawn", "--workers", "2", cwd=tiny, env=env)
    wait_for(lambda: BANNER_URL.search(server.stdout.text), what="the banner")
    server.port = int(BANNER_URL.search(server.stdout.text)[3])  # type: ignore[index]
    wait_for(lambda: sum(map(is_spawned, server.group_pids())) == 2, what="two workers loading")

    server.process.kill()
    wait_for_nothing_left(server, timeout=10)
