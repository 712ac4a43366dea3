"""With the reloader and ``-v 2``, where a new worker's first response spent its time: one line
after the reload's own, so that the whole edit, write to first response, is on the console; and
the hook that runs once a worker's first response is over (that line, and the checks after a
reload, see :mod:`~django_asgiserve.process.reload_checks`).

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

#: Called with the first request's arrival (``time.monotonic``) once its response is over.
FirstResponseHook = Callable[[float], None]


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


def reporter(since: ServingSince, write: Callable[[str], None] = write_line) -> FirstResponseHook:
    """What writes :func:`line` for a first response that arrived at a given time, once it is
    over (in each process that serves: a backend's own forked workers time theirs)."""
    return lambda arrived: write(line(since, os.getpid(), arrived, time.monotonic()))


def after_first_response(app: ASGIApp, hook: FirstResponseHook) -> ASGIApp:
    """``app`` that calls ``hook`` with its first HTTP request's arrival time once that
    request's response is over; later requests pass through with one test of a flag."""
    pending = True

    async def first_response_app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal pending
        if not pending or scope["type"] != "http":
            await app(scope, receive, send)
            return
        pending = False
        arrived = time.monotonic()
        try:
            await app(scope, receive, send)
        finally:
            hook(arrived)

    return first_response_app
