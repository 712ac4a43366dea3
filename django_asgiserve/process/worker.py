"""A worker process: loads the project's application and serves it on the inherited sockets.

It keeps Django's autoreload contract: it sends ``autoreload_started`` with a reloader whose
``watch_dir()`` and ``extra_files`` the supervisor really watches, and for every change the
supervisor reports it sends ``file_changed`` and answers whether a reload is needed. When the
project's code cannot be loaded it serves the error instead (see :mod:`error_page`).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, NoReturn

from django_asgiserve import signals
from django_asgiserve.asgi import error_page, stack
from django_asgiserve.asgi.error_page import ExcInfo
from django_asgiserve.asgi.types import ASGIApp
from django_asgiserve.backends.base import Backend
from django_asgiserve.process import interrupts
from django_asgiserve.process.protocol import WorkerChannel, WorkerCommand
from django_asgiserve.reload import changes
from django_asgiserve.reload.autoreload import WorkerReloader
from django_asgiserve.reload.sources import learned_modules
from django_asgiserve.run_config import ServerConfig

#: Extra seconds after the grace period before a stopping worker ends itself regardless.
HARD_STOP_MARGIN = 0.5
#: Seconds after start-up when a worker tells which installed packages it went on to import,
#: so that the preloader imports them for the next worker.
LEARN_AFTER = 1.0


def run(
    config: ServerConfig, backend: Backend, channel: WorkerChannel, setup_error: ExcInfo | None
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
    generation = config.generation if config.reload else None
    if error is not None:
        error = trim_frames(error)
        print_error(error)
        debug = config.debug if setup_error else settings_debug()
        app = error_page.error_app(error, debug=debug, generation=generation)
    reloader = WorkerReloader(
        broken=error is not None,
        cold=setup_error is not None,
        learned=lambda: learned_modules(inherited, backend.worker_only_packages),
    )
    if setup_error is None:
        autoreload.autoreload_started.send(sender=reloader)
    backend.classify_here = reloader.classify
    threading.Thread(
        target=listen, args=(channel, reloader, backend, config), daemon=True, name="asgiserve"
    ).start()
    channel.send({"event": "ready", "pid": os.getpid(), "broken": error is not None})
    if config.reload:
        # Off the critical path: the sockets are served while this is worked out.
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
    if config.reload and not config.skip_checks and error is None:
        threading.Thread(target=report_checks, daemon=True, name="asgiserve-checks").start()

    sockets = [socket.socket(fileno=fd) for fd in config.socket_fds]
    serve_static = config.serve_static and error is None
    try:
        application = stack.wrap(
            app,
            serve_static=serve_static,
            proxy_headers=config.proxy_headers,
            forwarded_allow_ips=config.forwarded_allow_ips,
            generation=generation,
            listener_paths=listener_paths(generation, broken=error is not None),
            request_cost=config.request_cost and error is None,
            health_path=config.health_path if config.health_path or config.drain_delay else None,
            metrics_fd=config.metrics_fd,
            access_log=config.access_log,
        )
        if config.max_requests or config.max_worker_memory:
            application = recycled(application, config, channel)
        application = insight_hooks(application, config, error is None)
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


def insight_hooks(application: ASGIApp, config: ServerConfig, loaded: bool) -> ASGIApp:
    """The event-loop watchdog around ``application``; query counting for the request log;
    with ``--pdb``, the debugger at unhandled exceptions."""
    from django_asgiserve.insight import loop_watchdog, request_cost

    if loaded and config.request_cost:
        request_cost.install(debug=settings_debug())
    if loaded and config.pdb:
        from django_asgiserve.insight import post_mortem

        post_mortem.install()
    return loop_watchdog.watch_loops(application, config.loop_warn_ms)


def recycled(application: ASGIApp, config: ServerConfig, channel: WorkerChannel) -> ASGIApp:
    """``application`` asking the supervisor for a replacement past --max-requests or
    --max-worker-memory."""
    from django_asgiserve.process import recycling

    return recycling.with_limits(application, config, channel.send)


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


def listen(
    channel: WorkerChannel, reloader: WorkerReloader, backend: Backend, config: ServerConfig
) -> None:
    """Answer the supervisor; exit at once if it goes away."""
    while (message := channel.receive()) is not None:
        try:
            handle(message, channel, reloader, backend, config)
        except Exception:
            # Said, and survived: without this thread the supervisor could not stop the worker.
            traceback.print_exc()
    exit_now(1)


def handle(
    message: WorkerCommand,
    channel: WorkerChannel,
    reloader: WorkerReloader,
    backend: Backend,
    config: ServerConfig,
) -> None:
    if message["cmd"] == "changed":
        try:
            # In every serving process: a backend's own processes too (gunicorn's workers).
            action, reasons = backend.classify_change(message["paths"])
        except Exception:
            action, reasons = changes.fallback(message["paths"])
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
        channel.send({"event": "stopping"})
    elif message["cmd"] == "drain":  # --drain-delay: keep serving, the health path says 503
        from django_asgiserve.asgi.health import mark_draining

        mark_draining()


def stop(backend: Backend, config: ServerConfig) -> None:
    """Stop serving gracefully, and for sure once the grace period is over."""
    timer = threading.Timer(config.graceful_timeout + HARD_STOP_MARGIN, exit_now, args=(1,))
    timer.daemon = True
    timer.start()
    from django_asgiserve.asgi.health import mark_draining

    mark_draining()
    # Cancelling what is still open when the grace period ends makes some event loops report
    # every cancelled task (Python 3.11 with hypercorn, say): expected here, not worth a line.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    if config.reload:
        # A tab's reload listener is not a request in flight: it must not hold the grace.
        from django_asgiserve.asgi.tab_reload import end_streams

        end_streams()
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


def exit_now(code: int) -> NoReturn:
    """Leave without running the preloader's exit handlers (this process is a fork of it)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
