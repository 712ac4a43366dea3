"""The preloader: a process that imports Django, the backend and the project once, then forks
a fresh worker in milliseconds whenever the supervisor asks for one. Between forks it compiles
the URL patterns of the run's warm-up plan, which its workers then inherit (see
:mod:`~django_asgiserve.process.warm_up`).

It stays single-threaded so that ``fork()`` is safe; if the project's start-up left threads
running (or the platform cannot fork) it says so and becomes the worker it is first asked for,
and the supervisor falls back to starting a new preloader for every worker. If the project cannot
even be set up (broken settings, a ``SyntaxError`` in a model, an exception in
``AppConfig.ready()``) its workers serve the error page until an edit brings working code.
"""

from __future__ import annotations

import ctypes
import importlib
import os
import selectors
import signal
import socket
import sys
import threading
import traceback
from dataclasses import replace

from django_asgiserve import backends, platforms
from django_asgiserve.asgi.error_page import ExcInfo
from django_asgiserve.process import interrupts
from django_asgiserve.process.protocol import Channel, PreloaderChannel
from django_asgiserve.run_config import ServerConfig

CHANNEL_FD_KEY = "ASGISERVE_CHANNEL_FD"
#: What the supervisor runs; it must not rely on the current directory being importable.
BOOTSTRAP = (
    "import json, os, sys; sys.path[:] = json.loads(os.environ['ASGISERVE_CONFIG'])['sys_path'];"
    " from django_asgiserve.process.preloader import main; main()"
)
REAP_SECONDS = 0.5


def main() -> None:
    die_with_parent()
    interrupts.ignore()
    config = ServerConfig.from_environ()
    channel: PreloaderChannel = Channel(socket.socket(fileno=int(os.environ.pop(CHANNEL_FD_KEY))))
    os.environ["DJANGO_SETTINGS_MODULE"] = config.settings_module
    backend = backends.get(config.backend)(config)
    backend.preload()

    setup_error = set_up_django()
    from django_asgiserve.reload.sources import module_files

    can_fork = platforms.can_fork() and backend.fork_safe and threading.active_count() == 1
    channel.send(
        {
            "event": "booted",
            "pid": os.getpid(),
            "can_fork": can_fork,
            "broken": setup_error is not None,
            "preloaded": sorted(str(p) for p in module_files()),
        }
    )
    serve_forks(config, backend, channel, setup_error, can_fork)


def set_up_django() -> ExcInfo | None:
    import django
    from django.utils import autoreload

    try:
        autoreload.check_errors(django.setup)()
    except Exception:
        error: ExcInfo = sys.exc_info()  # type: ignore[assignment]
        return error
    return None


def serve_forks(
    config: ServerConfig,
    backend: backends.Backend,
    channel: PreloaderChannel,
    setup_error: ExcInfo | None,
    can_fork: bool,
) -> None:
    from django_asgiserve.process import forking, warm_up, worker
    from django_asgiserve.reload.sources import module_files

    selector = selectors.DefaultSelector()
    selector.register(channel.sock, selectors.EVENT_READ)
    children: set[int] = set()
    patterns = warm_up.PatternCompiler(config.warm_plan_fd)
    while True:
        if not selector.select(timeout=REAP_SECONDS):
            reap(children)
            if config.warm_plan_fd >= 0 and can_fork:  # off a fork's path: nothing asked meanwhile
                patterns.precompile()
            continue
        message, fds = channel.receive_with_fds()
        if message is None:
            break
        if message["cmd"] == "import":
            can_fork = learn(message["modules"], can_fork)
            channel.send(
                {
                    "event": "imported",
                    "can_fork": can_fork,
                    "preloaded": sorted(str(p) for p in module_files()),
                }
            )
            continue
        worker_end = socket.socket(fileno=fds[0])
        worker_config = replace(config, generation=message["generation"]).for_slot(message["slot"])
        if not can_fork:  # this process becomes the one worker
            selector.close()
            channel.close()
            worker.run(worker_config, backend, Channel(worker_end), setup_error)
        pid = forking.fork_worker(
            worker_config, backend, worker_end, setup_error, close=(selector, channel)
        )
        children.add(pid)
        worker_end.close()
        channel.send({"event": "forked", "pid": pid})
    # The supervisor is gone or done with us: take our workers along.
    for pid in children:
        platforms.kill(pid)
    os._exit(0)


def learn(modules: list[str], can_fork: bool) -> bool:
    """Import library modules that workers went on to import, so later forks start with them.

    Only modules from installed packages are offered (never the project's own); any that fails
    is skipped. If an import started a thread, forking is no longer safe: say so.
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException:
            continue
    return can_fork and threading.active_count() == 1


def reap(children: set[int]) -> None:
    """Collect the exit status of workers that have ended (the supervisor sees them go on
    their channels)."""
    if sys.platform == "win32":  # nothing forked there
        return
    for pid in list(children):
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            children.discard(pid)
            continue
        if done:
            children.discard(pid)


def die_with_parent() -> None:
    """On Linux, have the kernel end this process the moment the supervisor dies."""
    if sys.platform == "win32" or not platforms.has_parent_death_signal():
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        traceback.print_exc()
    if os.getppid() == 1:
        os._exit(1)
