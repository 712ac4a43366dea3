"""Django signals a worker sends around serving, when ``ASGISERVE["LIFESPAN_SIGNALS"]`` is on.

They stand in for ASGI lifespan events, which asgiserve answers itself and which daphne never
sends: ``worker_started`` just before a worker starts serving (after the project's application
and URLconf are loaded), ``worker_stopping`` once it has stopped serving (in-flight requests are
finished, or the grace period is over). Every worker process sends them: one per worker with
``--workers N``, and again for each new worker the reloader starts. They are sent with ``sender``
the backend's class and a ``backend`` argument, its name (``"uvicorn"``, ...). Receivers are
called synchronously, in the worker's main thread; an exception in one is printed with its
traceback and does not stop the worker or the other receivers.
"""

from __future__ import annotations

import sys
import traceback
from typing import TYPE_CHECKING

from django.dispatch import Signal

if TYPE_CHECKING:
    from django_asgiserve.backends.base import Backend
    from django_asgiserve.run_config import ServerConfig

worker_started = Signal()
worker_stopping = Signal()


def send(signal: Signal, config: ServerConfig, backend: Backend) -> None:
    """Send ``signal`` if the run asks for it; print the receivers' exceptions."""
    if not config.lifespan_signals:
        return
    name = "worker_started" if signal is worker_started else "worker_stopping"
    results = signal.send_robust(sender=type(backend), backend=backend.name)
    for receiver, result in results:
        if isinstance(result, BaseException):
            sys.stderr.write(f"Error in a {name} receiver, {receiver!r}:\n")
            traceback.print_exception(result)
    sys.stderr.flush()
