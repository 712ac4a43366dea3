"""gunicorn's application, arbiter and worker as the gunicorn backend runs them (see
:mod:`~django_asgiserve.backends.gunicorn`).

Imported only in ``serve()``: it imports gunicorn, uvicorn and ``uvicorn_worker``. gunicorn
instantiates the worker class itself; the backend reaches it as a class attribute of a subclass
made for each run (:func:`worker_class`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Protocol, cast

if sys.platform == "win32":  # the backend is refused there (see process_models)
    raise ImportError("gunicorn does not run on Windows")

from django.dispatch import Signal
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from uvicorn_worker import UvicornWorker

from django_asgiserve import signals
from django_asgiserve.backends.base import ACCEPTED_SETTLE_SECONDS, ASGIApp
from django_asgiserve.backends.gunicorn_relay import ChangeRelay, relay_changes
from django_asgiserve.backends.uvicorn import not_a_stop_cancellation
from django_asgiserve.backends.uvicorn_server import StopAcceptingServer
from django_asgiserve.upstream import gunicorn as gunicorn_internals
from django_asgiserve.upstream import uvicorn_worker as uvicorn_worker_internals

#: Seconds the arbiter waits for stopping workers beyond their grace period before it kills
#: them: a worker that ends its streams on time must not be reported as killed. Less than the
#: worker's own hard stop margin, so that the arbiter is still there to do it.
ARBITER_MARGIN = 0.4
#: How often a gunicorn worker checks that its arbiter is still there.
ARBITER_POLL_SECONDS = 0.1


class GunicornBackend(Protocol):
    """What the arbiter and its workers need of the gunicorn backend (:mod:`gunicorn` imports
    this module, never the other way round)."""

    graceful_timeout: float
    announce: Callable[[Signal], None]

    def started(self, arbiter: AsgiserveArbiter) -> None:
        """The arbiter handles signals from now on."""


class Application(BaseApplication):  # type: ignore[misc]
    """Serves ``app`` with ``settings`` (gunicorn's setting names)."""

    def __init__(
        self,
        app: ASGIApp,
        settings: dict[str, Any],
        relay: ChangeRelay,
        graceful_timeout: float,
    ) -> None:
        self.app = app
        self.settings = settings
        self.relay = relay
        self.graceful_timeout = graceful_timeout
        super().__init__()  # which loads the configuration

    def load_config(self) -> None:
        for key, value in self.settings.items():
            self.cfg.set(key, value)
        gunicorn_internals.set_if_known(self.cfg, "control_socket_disable", True)
        # The setting takes whole seconds only; the arbiter computes with any number.
        grace = self.graceful_timeout + ARBITER_MARGIN
        gunicorn_internals.set_seconds(self.cfg, "graceful_timeout", grace)
        relay_changes(self.cfg, self.relay)

    def load(self) -> ASGIApp:
        return self.app


class AsgiserveArbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's arbiter, leaving the signals asgiserve's processes own to them; tells
    ``backend`` once it handles signals."""

    # Not INT (Ctrl+C is the supervisor's), TERM (the asgiserve worker's graceful stop),
    # HUP, USR2 or WINCH (reload, re-exec, daemon stop: the supervisor's business).
    SIGNALS: ClassVar[list[int]] = [
        signal.SIGQUIT,
        signal.SIGTTIN,
        signal.SIGTTOU,
        signal.SIGUSR1,
    ]

    def __init__(self, application: Application, backend: GunicornBackend) -> None:
        self.backend = backend
        super().__init__(application)

    def start(self) -> None:
        super().start()
        self.backend.started(self)

    def stop(self, graceful: bool = True) -> None:
        # Close our copies of the sockets here: gunicorn would also unlink a Unix socket.
        listeners: list[socket.socket] = self.LISTENERS
        for listener in listeners:
            listener.close()
        self.LISTENERS: list[socket.socket] = []
        super().stop(graceful)


def make_arbiter(
    backend: GunicornBackend, app: ASGIApp, settings: dict[str, Any], relay: ChangeRelay
) -> AsgiserveArbiter:
    """A gunicorn arbiter that serves ``app`` with ``settings`` (gunicorn's setting names)."""
    try:
        application = Application(app, settings, relay, backend.graceful_timeout)
    except SystemExit:
        raise RuntimeError(
            "gunicorn refused ASGISERVE['OPTIONS']['gunicorn'] (see the error above)."
        ) from None
    return AsgiserveArbiter(application, backend)


class WorkerServer(StopAcceptingServer):
    """The uvicorn server of a gunicorn worker: SIGTERM (from the arbiter) stops it gracefully."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # SIGINT stays ignored.
        previous = signal.signal(signal.SIGTERM, self.terminate)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)

    def terminate(self, *_: Any) -> None:
        # The reload listeners' streams are this process's to end (see asgi/tab_reload.py).
        from django_asgiserve.asgi.tab_reload import end_streams

        end_streams()
        self.request_stop()


class AsgiserveWorker(UvicornWorker):  # type: ignore[misc]
    """uvicorn's gunicorn worker, set up as asgiserve's other backends set up uvicorn; gunicorn
    runs a subclass made by :func:`worker_class`, which says whose worker it is."""

    backend: ClassVar[GunicornBackend]

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
        self.backend.announce(signals.worker_started)
        super().run()
        self.backend.announce(signals.worker_stopping)

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = WorkerServer(config=self.config)
        uvicorn_worker_internals.install_sigquit_handler(self)
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)


def worker_class(backend: GunicornBackend) -> type[AsgiserveWorker]:
    """The worker class gunicorn runs for ``backend``."""
    config = {
        **UvicornWorker.CONFIG_KWARGS,
        "lifespan": "off",
        "access_log": False,
        "proxy_headers": False,
        "timeout_graceful_shutdown": max(0.0, backend.graceful_timeout - ACCEPTED_SETTLE_SECONDS),
    }
    attributes = {"backend": backend, "CONFIG_KWARGS": config}
    return cast("type[AsgiserveWorker]", type("AsgiserveWorker", (AsgiserveWorker,), attributes))


def exit_with_arbiter(arbiter: int) -> None:
    """End this gunicorn worker at once when its arbiter is gone (killed, or its supervisor
    was), whatever it is doing: nothing may keep the port once asgiserve has stopped."""
    while os.getppid() == arbiter:
        time.sleep(ARBITER_POLL_SECONDS)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)
