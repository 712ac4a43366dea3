"""gunicorn with uvicorn's worker (``uvicorn_worker.UvicornWorker``), as Django's deployment
docs pair them, with gunicorn's own arbiter as the process manager.

The supervisor runs one asgiserve worker; its ``serve()`` runs a gunicorn arbiter in its main
thread, on copies of the inherited listening sockets, and the arbiter forks ``--workers``
uvicorn workers, which serve the code that asgiserve worker loaded. A reload replaces the whole
arbiter; a gunicorn worker that dies is replaced by its arbiter, an arbiter that dies by the
supervisor. The arbiter leaves Ctrl+C to the supervisor and SIGTERM to the asgiserve worker
(whose graceful stop calls :meth:`GunicornBackend.stop`), writes no pidfile, opens no control
socket and never unlinks a socket; its workers ignore Ctrl+C too and exit at once if their
arbiter is gone. A changed file is judged by the asgiserve worker (so that workers the arbiter
forks later start from the new state) and by each gunicorn worker, through gunicorn's
``pre_fork``, ``post_fork`` and ``child_exit`` hooks (see :mod:`~django_asgiserve.relay`);
hooks of the user's own run too.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from django_asgiserve.backends.base import (
    ACCEPTED_SETTLE_SECONDS,
    BACKLOG_OWNED,
    MANAGED,
    ASGIApp,
    Backend,
)
from django_asgiserve.backends.gunicorn_relay import ChangeRelay, relay_changes

if TYPE_CHECKING:
    from django_asgiserve.reload.changes import Classification
    from django_asgiserve.run_config import ServerConfig

PROXY = "proxy headers are handled by asgiserve"
#: Seconds the arbiter waits for stopping workers beyond their grace period before it kills
#: them: a worker that ends its streams on time must not be reported as killed. Less than the
#: worker's own hard stop margin, so that the arbiter is still there to do it.
ARBITER_MARGIN = 0.4
#: How often a gunicorn worker checks that its arbiter is still there.
ARBITER_POLL_SECONDS = 0.1


class GunicornBackend(Backend):
    name = "gunicorn"
    distribution = "gunicorn"
    module = "gunicorn"
    manages_workers = True
    managed_options: ClassVar[dict[str, str]] = {
        **dict.fromkeys(("bind", "workers", "reuse_port", "daemon", "pidfile"), MANAGED),
        **dict.fromkeys(("reload", "reload_engine", "reload_extra_files", "preload_app"), MANAGED),
        **dict.fromkeys(("accesslog", "access_log_format"), MANAGED),
        **dict.fromkeys(("control_socket", "control_socket_disable"), MANAGED),
        "worker_class": "asgiserve runs uvicorn's worker (uvicorn_worker.UvicornWorker)",
        "wsgi_app": "asgiserve serves ASGI_APPLICATION",
        "graceful_timeout": "use --graceful-timeout or ASGISERVE['GRACEFUL_TIMEOUT']",
        "backlog": BACKLOG_OWNED,
        **dict.fromkeys(("certfile", "keyfile"), "use --certfile and --keyfile"),
        "root_path": "set FORCE_SCRIPT_NAME instead, which means the same on every backend",
        **dict.fromkeys(("forwarded_allow_ips", "proxy_allow_ips"), PROXY),
        **dict.fromkeys(("secure_scheme_headers", "forwarder_headers"), PROXY),
    }

    _arbiter: Any = None
    _relay: ChangeRelay | None = None
    _stop_requested = False

    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        self.workers = config.workers
        self._lock = threading.Lock()

    @classmethod
    def is_installed(cls) -> bool:
        return all(
            importlib.util.find_spec(name) is not None
            for name in ("gunicorn", "uvicorn_worker", "uvicorn")
        )

    @classmethod
    def accepted_options(cls) -> Iterable[str]:
        from gunicorn.config import KNOWN_SETTINGS

        return {setting.name for setting in KNOWN_SETTINGS}

    def preload(self) -> None:
        import gunicorn.app.base
        import gunicorn.arbiter
        import gunicorn.glogging  # noqa: F401
        import uvicorn.protocols.http.auto
        import uvicorn.protocols.websockets.auto  # noqa: F401
        import uvicorn_worker  # noqa: F401

        with contextlib.suppress(ImportError):
            import uvloop  # noqa: F401

    def serve(self, app: ASGIApp, sockets: list[socket.socket]) -> None:
        settings: dict[str, Any] = {
            "workers": self.workers,
            "worker_class": worker_class(self),
            "accesslog": None,
            # Warnings and errors show; "Starting gunicorn" and "Booting worker" do not.
            "loglevel": "warning",
            **self.options,
        }
        if self.tls is not None:
            settings.update(certfile=self.tls.certfile, keyfile=self.tls.keyfile)
        # gunicorn adopts each descriptor it is given and closes it when it stops: give it
        # copies, and keep the sockets the worker holds.
        streams = [s for s in sockets if s.type == socket.SOCK_STREAM]
        settings["bind"] = [f"fd://{os.dup(s.fileno())}" for s in streams]
        self._relay = ChangeRelay(self.classify_here)
        arbiter = make_arbiter(self, app, settings, self._relay)
        with contextlib.suppress(SystemExit):  # how the arbiter ends, stopped or not
            arbiter.run()

    def stop(self) -> None:
        with self._lock:
            self._stop_requested = True
            arbiter = self._arbiter
        if arbiter is not None:
            # What the arbiter's own SIGTERM handler does: a graceful stop of its workers.
            arbiter.signal(signal.SIGTERM, None)

    def classify_change(self, paths: list[str]) -> Classification:
        with self._lock:
            arbiter, relay = self._arbiter, self._relay
        if arbiter is None or relay is None:
            return self.classify_here(paths)
        return relay.classify(paths, lambda: arbiter.WORKERS.copy().values())

    def started(self, arbiter: Any) -> None:
        """The arbiter handles signals from now on; a stop asked for earlier is passed on."""
        with self._lock:
            self._arbiter = arbiter
            stop = self._stop_requested
        if stop:
            arbiter.signal(signal.SIGTERM, None)


def make_arbiter(
    backend: GunicornBackend, app: ASGIApp, settings: dict[str, Any], relay: ChangeRelay
) -> Any:
    """A gunicorn arbiter that serves ``app`` with ``settings`` (gunicorn's setting names)."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in settings.items():
                self.cfg.set(key, value)
            if "control_socket_disable" in self.cfg.settings:  # gunicorn 25.1 and later
                self.cfg.set("control_socket_disable", True)
            # The setting takes whole seconds only; the arbiter computes with any number.
            self.cfg.settings["graceful_timeout"].value = backend.graceful_timeout + ARBITER_MARGIN
            relay_changes(self.cfg, relay)

        def load(self) -> ASGIApp:
            return app

    class AsgiserveArbiter(Arbiter):  # type: ignore[misc]
        # Not INT (Ctrl+C is the supervisor's), TERM (the asgiserve worker's graceful stop),
        # HUP, USR2 or WINCH (reload, re-exec, daemon stop: the supervisor's business).
        SIGNALS: ClassVar[list[int]] = [
            signal.SIGQUIT,
            signal.SIGTTIN,
            signal.SIGTTOU,
            signal.SIGUSR1,
        ]

        def start(self) -> None:
            super().start()
            backend.started(self)

        def stop(self, graceful: bool = True) -> None:
            # Close our copies of the sockets here: gunicorn would also unlink a Unix socket.
            listeners: list[socket.socket] = self.LISTENERS
            for listener in listeners:
                listener.close()
            self.LISTENERS: list[socket.socket] = []
            super().stop(graceful)

    try:
        application = Application()
    except SystemExit:
        raise RuntimeError(
            "gunicorn refused ASGISERVE['OPTIONS']['gunicorn'] (see the error above)."
        ) from None
    return AsgiserveArbiter(application)


def worker_class(backend: GunicornBackend) -> type[Any]:
    """uvicorn's gunicorn worker, set up as asgiserve's other backends set up uvicorn."""
    from uvicorn.server import Server
    from uvicorn_worker import UvicornWorker

    from django_asgiserve import signals
    from django_asgiserve.backends.uvicorn import not_a_stop_cancellation

    class WorkerServer(Server):
        loop: asyncio.AbstractEventLoop | None = None

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # SIGINT stays ignored; SIGTERM (from the arbiter) stops gracefully.
            previous = signal.signal(signal.SIGTERM, self.terminate)
            try:
                yield
            finally:
                signal.signal(signal.SIGTERM, previous)

        def terminate(self, *_: Any) -> None:
            # The reload listeners' streams are this process's to end (see asgi/tab_reload.py).
            from django_asgiserve.asgi.tab_reload import end_streams

            end_streams()
            if self.loop is None:
                self.should_exit = True
            else:
                self.loop.call_soon_threadsafe(self.stop_accepting)

        def stop_accepting(self) -> None:
            """Stop accepting at once, so that the next workers get every new connection;
            shut down (which closes idle connections) once the accepted ones are read."""
            assert self.loop is not None
            for server in getattr(self, "servers", []):
                server.close()
            self.loop.call_later(ACCEPTED_SETTLE_SECONDS, setattr, self, "should_exit", True)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            self.loop = asyncio.get_running_loop()
            await super().startup(sockets)

    class AsgiserveWorker(UvicornWorker):  # type: ignore[misc]
        CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
            **UvicornWorker.CONFIG_KWARGS,
            "lifespan": "off",
            "access_log": False,
            "proxy_headers": False,
            "timeout_graceful_shutdown": max(
                0.0, backend.graceful_timeout - ACCEPTED_SETTLE_SECONDS
            ),
        }

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # Ending open streams once the grace period is over is what a reload means to do.
            logging.getLogger("uvicorn.error").addFilter(not_a_stop_cancellation)

        def init_signals(self) -> None:
            # As uvicorn's worker does, but SIGINT stays ignored: Ctrl+C is the supervisor's.
            for signum in self.SIGNALS:
                if signum != signal.SIGINT:
                    signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGUSR1, self.handle_usr1)
            signal.siginterrupt(signal.SIGUSR1, False)

        def run(self) -> None:
            threading.Thread(
                target=exit_with_arbiter, args=(self.ppid,), daemon=True, name="asgiserve-arbiter"
            ).start()
            # Outside the event loop: receivers may use the ORM synchronously.
            backend.announce(signals.worker_started)
            super().run()
            backend.announce(signals.worker_stopping)

        async def _serve(self) -> None:
            from gunicorn.arbiter import Arbiter

            self.config.app = self.wsgi
            server = WorkerServer(config=self.config)
            self._install_sigquit_handler()
            await server.serve(sockets=self.sockets)
            if not server.started:
                sys.exit(Arbiter.WORKER_BOOT_ERROR)

    return AsgiserveWorker


def exit_with_arbiter(arbiter: int) -> None:
    """End this gunicorn worker at once when its arbiter is gone (killed, or its supervisor
    was), whatever it is doing: nothing may keep the port once asgiserve has stopped."""
    while os.getppid() == arbiter:
        time.sleep(ARBITER_POLL_SECONDS)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
