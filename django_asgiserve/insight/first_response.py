"""With the reloader and ``-v 2``, where a new worker's first response spent its time: one line
after the reload's own, so that the whole edit, write to first response, is on the console.

A worker knows when it was told to serve and, after an edit, when the supervisor saw that edit
(both on the machine's monotonic clock). Its first HTTP request is timed from arrival to the end
of its response; later requests pass through with one test of a flag.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from django_asgiserve.asgi.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True)
class ServingSince:
    """When a worker began serving and, after an edit, when the edit was seen."""

    serving: float
    change_seen: float | None = None
    #: Seconds the worker spent warming up before it said it had loaded.
    warmed: float = 0.0


def line(since: ServingSince, pid: int, arrived: float, answered: float) -> str:
    """The console line for a first response that arrived and was answered at these times."""
    took = (answered - arrived) * 1000
    if since.change_seen is None:
        waited = (arrived - since.serving) * 1000
        return (
            f"First response of worker {pid} (warmed up in {since.warmed * 1000:.0f} ms): the "
            f"request came {waited:.0f} ms after it began serving and was answered in "
            f"{took:.0f} ms."
        )

    def after(at: float) -> str:
        assert since.change_seen is not None
        return f"+{(at - since.change_seen) * 1000:.0f} ms"

    return (
        f"First response {after(answered)} after the change: worker {pid} warmed up in "
        f"{since.warmed * 1000:.0f} ms, serving {after(since.serving)}, request in "
        f"{after(arrived)}, answered in {took:.0f} ms."
    )


def write_line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def report_first_response(
    app: ASGIApp, since: ServingSince, write: Callable[[str], None] = write_line
) -> ASGIApp:
    """``app`` that writes :func:`line` once its first HTTP response is over (in each process
    that serves it: a backend's own forked workers time theirs)."""
    pending = True

    async def timing_app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal pending
        if not pending or scope["type"] != "http":
            await app(scope, receive, send)
            return
        pending = False
        arrived = time.monotonic()
        try:
            await app(scope, receive, send)
        finally:
            write(line(since, os.getpid(), arrived, time.monotonic()))

    return timing_app
