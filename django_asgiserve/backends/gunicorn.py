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

import contextlib
import importlib.util
import os
import signal
import socket
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from django_asgiserve.backends.base import (
    BACKLOG_OWNED,
    MANAGED,
    ASGIApp,
    Backend,
)
from django_asgiserve.backends.gunicorn_relay import ChangeRelay

if TYPE_CHECKING:
    from django_asgiserve.backends.gunicorn_server import AsgiserveArbiter
    from django_asgiserve.reload.changes import Classification
    from django_asgiserve.run_config import ServerConfig

PROXY = "proxy headers are handled by asgiserve"


class GunicornBackend(Backend):
    name = "gunicorn"
    distribution = "gunicorn"
    module = "gunicorn"
    manages_workers = True
    runs_on_windows = False
    upstreams = ("gunicorn", "uvicorn_worker", "uvicorn")
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

    _arbiter: AsgiserveArbiter | None = None
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
        self.probe_upstreams()

    def serve(self, app: ASGIApp, sockets: list[socket.socket]) -> None:
        from django_asgiserve.backends.gunicorn_server import make_arbiter, worker_class

        self.probe_upstreams()

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

    def started(self, arbiter: AsgiserveArbiter) -> None:
        """The arbiter handles signals from now on; a stop asked for earlier is passed on."""
        with self._lock:
            self._arbiter = arbiter
            stop = self._stop_requested
        if stop:
            arbiter.signal(signal.SIGTERM, None)
