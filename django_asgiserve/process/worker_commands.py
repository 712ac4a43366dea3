"""A worker's side of its channel: the supervisor's commands, read on a thread of their own, and
the worker's stop.

A worker loads the project, says ``loaded`` and then waits for ``serve``: the supervisor sends it
once runserver's start-up checks are over, so no request is answered before them (connections
made meanwhile wait in the listen backlog). Until then a stop (the ``stop`` command, SIGTERM, the
supervisor gone) ends the worker at once: it has nothing in flight.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from typing import NoReturn

from django_asgiserve.backends.base import Backend
from django_asgiserve.process.protocol import WorkerChannel, WorkerCommand
from django_asgiserve.reload import changes
from django_asgiserve.reload.autoreload import WorkerReloader
from django_asgiserve.run_config import HARD_STOP_MARGIN, ServerConfig


class WorkerCommands:
    """Answers the supervisor's commands, and holds the worker until it is told to serve."""

    def __init__(self, channel: WorkerChannel, backend: Backend, config: ServerConfig) -> None:
        self.channel = channel
        self.backend = backend
        self.config = config
        self.reloader: WorkerReloader | None = None
        self.told_to_serve = threading.Event()
        #: When the edit this worker loaded was seen (none for the first workers).
        self.change_seen: float | None = None
        #: Whether the backend may be serving (a stop then goes through its graceful stop).
        self.serving = False
        # Reentrant: SIGTERM runs stop() on the main thread, which may hold it.
        self.lock = threading.RLock()

    def start(self, reloader: WorkerReloader) -> None:
        """Read the supervisor's commands from now on (``changed`` needs ``reloader``)."""
        self.reloader = reloader
        threading.Thread(target=self.listen, daemon=True, name="asgiserve").start()

    def wait_for_serve(self) -> None:
        """Return once the supervisor says to serve (a stop meanwhile ends the process)."""
        self.told_to_serve.wait()
        with self.lock:
            self.serving = True

    def listen(self) -> None:
        """Answer the supervisor; exit at once if it goes away."""
        while (message := self.channel.receive()) is not None:
            try:
                self.handle(message)
            except Exception:
                # Said, and survived: without this thread the supervisor could not stop it.
                traceback.print_exc()
        exit_now(1)

    def handle(self, message: WorkerCommand) -> None:
        if message["cmd"] == "serve":
            self.change_seen = message["since"]
            self.told_to_serve.set()
        elif message["cmd"] == "changed":
            self.classify(message["id"], message["paths"])
        elif message["cmd"] == "stop":
            self.stop()
            self.channel.send({"event": "stopping"})
        elif message["cmd"] == "drain":  # --drain-delay: keep serving, the health path says 503
            from django_asgiserve.asgi.health import mark_draining

            mark_draining()

    def classify(self, request_id: int, paths: list[str]) -> None:
        assert self.reloader is not None
        try:
            # In every serving process: a backend's own processes too (gunicorn's workers).
            action, reasons = self.backend.classify_change(paths)
        except Exception:
            action, reasons = changes.fallback(paths)
        self.channel.send(
            {
                "event": "classified",
                "id": request_id,
                "action": action,
                "paths": reasons,
                "learned": self.reloader.learned(),
            }
        )

    def stop(self) -> None:
        """Stop serving gracefully, and for sure once the grace period is over; a worker that
        was never told to serve has nothing to finish: it ends now."""
        with self.lock:
            if not self.serving:
                exit_now(0)
        timer = threading.Timer(
            self.config.graceful_timeout + HARD_STOP_MARGIN, exit_now, args=(1,)
        )
        timer.daemon = True
        timer.start()
        from django_asgiserve.asgi.health import mark_draining

        mark_draining()
        # Cancelling what is still open when the grace period ends makes some event loops
        # report every cancelled task (Python 3.11 with hypercorn, say): expected here.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        if self.config.reload:
            # A tab's reload listener is not a request in flight: it must not hold the grace.
            from django_asgiserve.asgi.tab_reload import end_streams

            end_streams()
        self.backend.stop()


def exit_now(code: int) -> NoReturn:
    """Leave without running the preloader's exit handlers (this process is a fork of it)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
