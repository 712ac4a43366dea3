"""The one way a worker is forked: by the management command itself (the first workers, before
the supervisor's event loop starts; Django is set up there already) and by a preloader (every
later one). The child runs :func:`~django_asgiserve.process.worker.run` and never returns.
"""

from __future__ import annotations

import gc
import os
import socket
import sys
from collections.abc import Iterable
from typing import Protocol

if sys.platform == "win32":  # the fork model is refused there (see process_models)
    raise ImportError("forking needs os.fork")

from django_asgiserve.asgi.error_page import ExcInfo
from django_asgiserve.backends.base import Backend
from django_asgiserve.process import interrupts, worker
from django_asgiserve.process.protocol import Channel, WorkerChannel
from django_asgiserve.run_config import ServerConfig


class Closable(Protocol):
    def close(self) -> None: ...


def fork_worker(
    config: ServerConfig,
    backend: Backend,
    channel: socket.socket,
    setup_error: ExcInfo | None = None,
    *,
    close: Iterable[Closable] = (),
) -> int:
    """Fork a worker serving ``config``'s sockets, talking to the supervisor on ``channel`` (its
    end of the socket pair), serving the error page for ``setup_error`` if Django could not be
    set up; ``close``: what the worker must not hold (the parent's own channels and sockets).
    In this process: the worker's pid."""
    # What this process holds leaves the collector's care before the fork, as Python's gc docs
    # advise for servers that fork: a collection in the child then never walks, nor dirties the
    # memory of, the heap it inherits. A new worker loading the project after a reload collects
    # while it imports; walking the preloader's heap there cost healthchecks' view edit 5-15 ms.
    gc.freeze()
    with interrupts.deferred():  # a Ctrl+C now waits until the child ignores it
        pid = os.fork()
    if pid == 0:
        for each in close:
            each.close()
        worker_channel: WorkerChannel = Channel(channel)
        worker.run(config, backend, worker_channel, setup_error)
    return pid
