"""A worker process: loads the project's application and serves it on the inherited sockets.

It keeps Django's autoreload contract: it sends ``autoreload_started`` with a reloader whose
``watch_dir()`` and ``extra_files`` the supervisor really watches, and for every change the
supervisor reports it sends ``file_changed`` and answers whether a reload is needed. When the
project's code cannot be loaded it serves the error instead (see :mod:`errorpage`).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from django_asgiserve import errorpage, handlers, interrupts, signals
from django_asgiserve.backends.base import Backend
from django_asgiserve.channel import Channel, Message
from django_asgiserve.config import ServerConfig
from django_asgiserve.errorpage import ExcInfo

#: Extra seconds after the grace period before a stopping worker ends itself regardless.
HARD_STOP_MARGIN = 0.5
#: Seconds after start-up when a worker tells which installed packages it went on to import,
#: so that the preloader imports them for the next worker.
LEARN_AFTER = 1.0


def run(
    config: ServerConfig, backend: Backend, channel: Channel, setup_error: ExcInfo | None
) -> NoReturn:
    """Serve until told to stop (or until the supervisor disappears); never returns."""
    inherited = frozenset(sys.modules)
    interrupts.ignore()  # Ctrl+C reaches the supervisor, which stops us
    # The channel is this process's alone: one held open by a process it forks (a backend's
    # own worker) would hide from the supervisor that this one has gone.
    os.register_at_fork(after_in_child=lambda: close_in_child(channel))
    signal.signal(signal.SIGTERM, lambda *_: stop(backend, config))
    from django.utils import autoreload

    error = setup_error
    app: Any = None
    if error is None:
        loaded: list[Any] = []
        try:
            # Django's wrapper records the failing file, so fixing it counts as a change.
            autoreload.check_errors(lambda: loaded.append(load_application()))()
            app = loaded[0]
        except Exception:
            error = sys.exc_info()  # type: ignore[assignment]
    if error is not None:
        print_error(error)
        app = errorpage.error_app(error, debug=config.debug if setup_error else settings_debug())
    reloader = WorkerReloader(
        broken=error is not None,
        cold=setup_error is not None,
        learned=lambda: learned_modules(inherited, backend.worker_only_packages),
    )
    if setup_error is None:
        autoreload.autoreload_started.send(sender=reloader)
    threading.Thread(
        target=listen, args=(channel, reloader, backend, config), daemon=True, name="asgiserve"
    ).start()
    channel.send({"event": "ready", "pid": os.getpid(), "broken": error is not None})
    if config.reload:
        # Off the critical path: the sockets are served while this is worked out.
        threading.Thread(
            target=lambda: channel.send({"event": "watch", **reloader.watch_request()}),
            daemon=True,
            name="asgiserve-watch",
        ).start()
        teacher = threading.Timer(
            LEARN_AFTER, lambda: channel.send({"event": "learned", "modules": reloader.learned()})
        )
        teacher.daemon = True
        teacher.start()
    if config.reload and not config.skip_checks and error is None:
        threading.Thread(target=report_checks, daemon=True, name="asgiserve-checks").start()

    sockets = [socket.socket(fileno=fd) for fd in config.socket_fds]
    serve_static = config.serve_static and error is None
    try:
        application = handlers.wrap(
            app,
            serve_static=serve_static,
            proxy_headers=config.proxy_headers,
            forwarded_allow_ips=config.forwarded_allow_ips,
        )
        if error is None:
            backend.announce = lambda signal: signals.send(signal, config, backend)
        if not backend.manages_workers:
            backend.announce(signals.worker_started)
        backend.serve(application, sockets)
        if not backend.manages_workers:
            backend.announce(signals.worker_stopping)
    except Exception:
        traceback.print_exc()
        exit_now(1)
    exit_now(0)


def close_in_child(channel: Channel) -> None:
    """Close the channel's descriptor in a forked child (once: its own forks inherit the hook)."""
    fd = channel.sock.detach()
    if fd >= 0:
        os.close(fd)


def load_application() -> Any:
    """``ASGI_APPLICATION`` (or Django's handler), with the URLconf imported ahead of requests."""
    from django.conf import settings
    from django.core.asgi import get_asgi_application
    from django.urls import get_resolver
    from django.utils.module_loading import import_string

    from django_asgiserve.asgi.handler import install_if_enabled

    install_if_enabled()
    path = getattr(settings, "ASGI_APPLICATION", None)
    app = import_string(path) if path else get_asgi_application()
    if getattr(settings, "ROOT_URLCONF", None):
        get_resolver().url_patterns  # noqa: B018 - import urls and views now, not on a request
    return app


def settings_debug() -> bool:
    from django.conf import settings

    return bool(settings.DEBUG)


class WorkerReloader:
    """The ``sender`` of Django's autoreload signals in a worker.

    Django's receivers only call ``watch_dir()`` and read ``extra_files``; this class provides
    those (as Django's ``BaseReloader`` does) and classifies changes the supervisor reports.
    """

    def __init__(self, *, broken: bool, cold: bool, learned: Callable[[], list[str]]) -> None:
        from collections import defaultdict

        self.extra_files: set[Path] = set()
        self.directory_globs: dict[Path, set[str]] = defaultdict(set)
        self.broken = broken
        self.cold = cold
        self.learned = learned

    def watch_dir(self, path: str | Path, glob: str) -> None:
        try:
            directory = Path(path).absolute()
        except FileNotFoundError:
            return
        self.directory_globs[directory].add(glob)

    def watch_request(self) -> dict[str, Any]:
        """What the supervisor should watch for this worker."""
        from django_asgiserve.watch import project_roots

        modules = self.module_files()
        roots = project_roots(modules)
        roots.update(self.directory_globs)
        roots.update(path.parent for path in self.extra_files)
        return {"roots": sorted(str(r) for r in roots)}

    def module_files(self) -> set[Path]:
        """The real paths of every imported module and of files that failed to import."""
        from django.utils import autoreload

        return module_files() | {Path(os.path.realpath(f)) for f in autoreload._error_files}

    def is_watched(self, path: Path, modules: set[Path]) -> bool:
        """Whether Django's reloader would watch ``path``, given the imported ``modules``."""
        if path in self.extra_files:
            return True
        for directory, globs in self.directory_globs.items():
            if path.is_relative_to(directory):
                relative = path.relative_to(directory).as_posix()
                if any(glob_matches(relative, glob) for glob in globs):
                    return True
        # The path itself too: a module replaced by a symlink to elsewhere (or by nothing
        # readable) has changed, whatever the link now points to.
        return path in modules or Path(os.path.realpath(path)) in modules

    def classify(self, paths: list[str]) -> tuple[str, list[str]]:
        """``"none"``, ``"reload"`` or ``"cold"`` for a batch of changes, and the files that
        call for it."""
        from django.utils.autoreload import file_changed

        modules = self.module_files()  # once per batch: a checkout can change hundreds of files
        reasons = []
        for raw in paths:
            path = Path(raw)
            if self.broken:
                if path.suffix == ".py" or self.is_watched(path, modules):
                    reasons.append(raw)
                continue
            if not self.is_watched(path, modules):
                continue
            results = file_changed.send(sender=self, file_path=path)
            if not any(result for _receiver, result in results):
                reasons.append(raw)
        if not reasons:
            return "none", reasons
        return ("cold" if self.cold else "reload"), reasons


#: Module name -> real path of its source; filled as modules appear, since resolving every
#: path again on each change would cost tens of milliseconds on the reload's critical path.
_module_paths: dict[str, Path | None] = {}


def module_files() -> set[Path]:
    """Real paths of the source files of every imported module (cheaper than Django's)."""
    for name, module in list(sys.modules.items()):
        if name not in _module_paths:
            spec = getattr(module, "__spec__", None)
            origin = getattr(spec, "origin", None) if spec is not None else None
            located = origin and getattr(spec, "has_location", False)
            _module_paths[name] = Path(os.path.realpath(origin)) if located else None
    return {path for path in _module_paths.values() if path is not None}


def learned_modules(inherited: frozenset[str], worker_only: tuple[str, ...]) -> list[str]:
    """Modules of installed packages this worker imported that its preloader had not."""
    from django_asgiserve.watch import library_paths

    libraries = tuple(f"{path}{os.sep}" for path in library_paths())
    module_files()
    return sorted(
        name
        for name in list(sys.modules)
        if name not in inherited
        and not name.startswith(("django_asgiserve", "__main__", *worker_only))
        and (path := _module_paths.get(name)) is not None
        and str(path).startswith(libraries)
    )


def glob_matches(relative: str, glob: str) -> bool:
    return fnmatch.fnmatch(relative, glob) or (
        glob.startswith("**/") and fnmatch.fnmatch(relative, glob[3:])
    )


def listen(
    channel: Channel, reloader: WorkerReloader, backend: Backend, config: ServerConfig
) -> None:
    """Answer the supervisor; exit at once if it goes away."""
    while (message := channel.receive()) is not None:
        handle(message, channel, reloader, backend, config)
    exit_now(1)


def handle(
    message: Message,
    channel: Channel,
    reloader: WorkerReloader,
    backend: Backend,
    config: ServerConfig,
) -> None:
    if message["cmd"] == "changed":
        try:
            action, reasons = reloader.classify(message["paths"])
        except Exception:
            traceback.print_exc()
            action, reasons = "reload", message["paths"]
        channel.send(
            {
                "event": "classified",
                "id": message["id"],
                "action": action,
                "paths": reasons,
                "learned": reloader.learned(),
            }
        )
    elif message["cmd"] == "stop":
        stop(backend, config)


def stop(backend: Backend, config: ServerConfig) -> None:
    """Stop serving gracefully, and for sure once the grace period is over."""
    timer = threading.Timer(config.graceful_timeout + HARD_STOP_MARGIN, exit_now, args=(1,))
    timer.daemon = True
    timer.start()
    # Cancelling what is still open when the grace period ends makes some event loops report
    # every cancelled task (Python 3.11 with hypercorn, say): expected here, not worth a line.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    backend.stop()


def report_checks() -> None:
    """System checks after a reload, printed when they find something; never blocks serving."""
    from django.core.management.base import BaseCommand, SystemCheckError

    try:
        BaseCommand().check(display_num_errors=False)
    except SystemCheckError as error:
        sys.stderr.write(f"{error}\n")
    except Exception:
        traceback.print_exc()


def print_error(error: ExcInfo) -> None:
    """The traceback from the first frame that is not asgiserve's or Django's reloader's."""
    from django.utils import autoreload

    ours = {__file__, str(Path(__file__).with_name("preloader.py")), autoreload.__file__}
    tb = error[2]
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename in ours:
        tb = tb.tb_next
    sys.stderr.write("".join(traceback.format_exception(error[0], error[1], tb)))
    sys.stderr.flush()


def exit_now(code: int) -> NoReturn:
    """Leave without running the preloader's exit handlers (this process is a fork of it)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
