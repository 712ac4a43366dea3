"""A worker process: loads the project's application and serves it on the inherited sockets.

Its life, step by step (:func:`run`): take its signals, load the project (or the error page for
it, see :mod:`~django_asgiserve.asgi.error_page`), build what the workers it replaces had built
(see :mod:`warm_up`), keep Django's autoreload contract, say ``loaded``, wait until the supervisor
says ``serve`` (see :mod:`worker_commands`), serve until told to stop. Django's contract: it
sends ``autoreload_started`` with a reloader whose ``watch_dir()`` and ``extra_files`` the
supervisor really watches, and for every change the supervisor reports it sends
``file_changed`` and answers whether a reload is needed.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from django_asgiserve import signals
from django_asgiserve.asgi import error_page, stack
from django_asgiserve.asgi.error_page import ExcInfo
from django_asgiserve.asgi.types import ASGIApp
from django_asgiserve.backends.base import Backend
from django_asgiserve.insight import first_response
from django_asgiserve.insight.first_response import FirstResponseHook, ServingSince
from django_asgiserve.process import interrupts, recycling, reload_checks, warm_up
from django_asgiserve.process.protocol import WorkerChannel
from django_asgiserve.process.worker_commands import WorkerCommands, exit_now
from django_asgiserve.reload.autoreload import WorkerReloader
from django_asgiserve.reload.sources import learned_modules
from django_asgiserve.run_config import HARD_STOP_MARGIN, ServerConfig

__all__ = ["HARD_STOP_MARGIN", "load_application", "run"]

#: Seconds after start-up when a worker tells which installed packages it went on to import,
#: so that the preloader imports them for the next worker.
LEARN_AFTER = 1.0


@dataclass(frozen=True)
class Loaded:
    """What a worker serves: the project's application, or the error page for ``error``."""

    app: ASGIApp
    error: ExcInfo | None
    #: Whether Django itself could not be set up (a new preloader is needed to fix that).
    setup_failed: bool

    @property
    def broken(self) -> bool:
        return self.error is not None


def run(
    config: ServerConfig, backend: Backend, channel: WorkerChannel, setup_error: ExcInfo | None
) -> NoReturn:
    """Serve until told to stop (or until the supervisor disappears); never returns."""
    commands = WorkerCommands(channel, backend, config)
    take_signals(commands, channel)
    # Forked by a preloader, this costs nothing (its server is imported already); the first
    # workers, forked by the command, import it here, while the checks run, not once serving.
    backend.preload()
    inherited = frozenset(sys.modules)
    loaded = load(config, setup_error)
    warmed = warm(config, loaded)
    reloader = keep_the_reloader_contract(loaded, backend, inherited, config.warm_plan_fd)
    commands.start(reloader)
    channel.send({"event": "loaded", "pid": os.getpid(), "broken": loaded.broken})
    if config.reload:
        tell_what_to_watch(channel, reloader)
    commands.wait_for_serve()
    since = ServingSince(time.monotonic(), commands.change_seen, warmed)
    serve(config, backend, loaded, channel, since)


def take_signals(commands: WorkerCommands, channel: WorkerChannel) -> None:
    """Ctrl+C is the supervisor's; SIGTERM stops this worker gracefully."""
    signal.signal(signal.SIGTERM, lambda *_: commands.stop())
    interrupts.ignore()
    # The channel is this process's alone: one held open by a process it forks (a backend's
    # own worker) would hide from the supervisor that this one has gone.
    if sys.platform != "win32":  # nothing forks there
        os.register_at_fork(after_in_child=lambda: close_in_child(channel))


def load(config: ServerConfig, setup_error: ExcInfo | None) -> Loaded:
    """The project's application, or (printed, then served) the error that stops it loading."""
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
        error = trim_frames(error)
        print_error(error)
        debug = config.debug if setup_error else settings_debug()
        generation = config.generation if config.reload else None
        app = error_page.error_app(error, debug=debug, generation=generation)
    return Loaded(app, error, setup_failed=setup_error is not None)


def warm(config: ServerConfig, loaded: Loaded) -> float:
    """Build what the workers it replaces had built (see :mod:`warm_up`); the seconds it took."""
    if loaded.broken:
        return 0.0
    started = time.monotonic()
    warm_up.warm_up(config.warm_plan_fd, verbose=config.verbosity >= 2)
    return time.monotonic() - started


def keep_the_reloader_contract(
    loaded: Loaded, backend: Backend, inherited: frozenset[str], plan_fd: int = -1
) -> WorkerReloader:
    """The sender of Django's autoreload signals, ``autoreload_started`` sent; before it judges
    an edit it notes what this process built in the warm-up plan (``plan_fd``)."""
    from django.utils import autoreload

    reloader = WorkerReloader(
        broken=loaded.broken,
        cold=loaded.setup_failed,
        learned=lambda: learned_modules(inherited, backend.worker_only_packages),
        before_judging=lambda: warm_up.record(plan_fd),
    )
    if not loaded.setup_failed:
        autoreload.autoreload_started.send(sender=reloader)
    backend.classify_here = reloader.classify
    return reloader


def tell_what_to_watch(channel: WorkerChannel, reloader: WorkerReloader) -> None:
    """Off the critical path: what to watch now, and later which libraries this worker went on
    to import (for the preloader to import too)."""
    threading.Thread(
        target=lambda: channel.send(reloader.watch_request()),
        daemon=True,
        name="asgiserve-watch",
    ).start()
    teacher = threading.Timer(
        LEARN_AFTER, lambda: channel.send({"event": "learned", "modules": reloader.learned()})
    )
    teacher.daemon = True
    teacher.start()


def serve(
    config: ServerConfig,
    backend: Backend,
    loaded: Loaded,
    channel: WorkerChannel,
    since: ServingSince | None = None,
) -> NoReturn:
    """Serve the sockets with the backend until it is stopped, then leave (``since``: when told
    to serve, for the first response's line at ``-v 2``)."""
    answered = first_response_hook(config, loaded, since)
    generation = config.generation if config.reload else None
    served = recycling.served_count(config)
    try:
        application = stack.wrap(
            loaded.app,
            serve_static=config.serve_static and not loaded.broken,
            proxy_headers=config.proxy_headers,
            forwarded_allow_ips=config.forwarded_allow_ips,
            generation=generation,
            listener_paths=listener_paths(generation, broken=loaded.broken),
            request_cost=config.request_cost and not loaded.broken,
            health_path=config.health_path if config.health_path or config.drain_delay else None,
            metrics_fd=config.metrics_fd,
            access_log=config.access_log,
            served=served,
            loop_warn_ms=config.loop_warn_ms,
            after_first_response=answered,
        )
        recycling.watch_limits(config, served, channel.send)
        if not loaded.broken and config.request_cost:
            from django_asgiserve.insight import request_cost

            request_cost.install(debug=settings_debug())
        if not loaded.broken and config.pdb:
            from django_asgiserve.insight import post_mortem

            post_mortem.install()
        if not loaded.broken:
            backend.announce = lambda signal: signals.send(signal, config, backend)
        if not backend.manages_workers:
            backend.announce(signals.worker_started)
        backend.serve(application, [socket.socket(fileno=fd) for fd in config.socket_fds])
        if not backend.manages_workers:
            backend.announce(signals.worker_stopping)
    except Exception:
        traceback.print_exc()
        exit_now(1)
    exit_now(0)


def first_response_hook(
    config: ServerConfig, loaded: Loaded, since: ServingSince | None
) -> FirstResponseHook | None:
    """What waits for this worker's first response to be over, started: with the reloader, the
    system checks (see :mod:`reload_checks`), and with ``-v 2`` the first response's line."""
    if not config.reload or loaded.broken:
        return None
    hooks: list[FirstResponseHook] = []
    if since is not None and config.verbosity >= 2:
        hooks.append(first_response.reporter(since))
    if not config.skip_checks:
        checks = reload_checks.ChecksAfterFirstResponse()
        checks.start()
        hooks.append(lambda _arrived: checks.first_response_over())
    if not hooks:
        return None

    def answered(arrived: float) -> None:
        for hook in hooks:
            hook(arrived)

    return answered


def close_in_child(channel: WorkerChannel) -> None:
    """Close the channel's descriptor in a forked child (once: its own forks inherit the hook)."""
    fd = channel.sock.detach()
    if fd >= 0:
        os.close(fd)


def load_application(*, sync_fast_path: bool = True) -> Any:
    """``ASGI_APPLICATION`` (or Django's handler), with the URLconf imported ahead of requests;
    ``sync_fast_path``: whether Django's handler may be asgiserve's (as the setting says)."""
    import django.core.asgi
    from django.conf import settings
    from django.urls import get_resolver
    from django.utils.module_loading import import_string

    from django_asgiserve.asgi.handler import install_if_enabled

    if sync_fast_path:
        install_if_enabled()
    path = getattr(settings, "ASGI_APPLICATION", None)
    # Looked up after install_if_enabled(), which may have replaced it.
    app = import_string(path) if path else django.core.asgi.get_asgi_application()
    if getattr(settings, "ROOT_URLCONF", None):
        get_resolver().url_patterns  # noqa: B018 - import urls and views now, not on a request
    return app


def listener_paths(generation: str | None, *, broken: bool) -> frozenset[str]:
    """The paths of the reload listeners' streams to end when this worker stops."""
    from django_asgiserve.asgi.tab_reload import browser_reload_events_path

    path = None if generation is None or broken else browser_reload_events_path()
    return frozenset({path} if path else ())


def settings_debug() -> bool:
    from django.conf import settings

    return bool(settings.DEBUG)


def print_error(error: ExcInfo) -> None:
    """The traceback from the first frame that is not asgiserve's or Django's reloader's."""
    error = trim_frames(error)
    sys.stderr.write("".join(traceback.format_exception(*error)))
    sys.stderr.flush()


def trim_frames(error: ExcInfo) -> ExcInfo:
    """``error`` with its traceback starting at the first frame that is not asgiserve's or
    Django's reloader's (the exception's own ``__traceback__`` too: Django's error page reads
    that one for chained exceptions)."""
    from django.utils import autoreload

    ours = {__file__, str(Path(__file__).with_name("preloader.py")), autoreload.__file__}
    tb = error[2]
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename in ours:
        tb = tb.tb_next
    return error[0], error[1].with_traceback(tb), tb
