"""What asgiserve relies on in uvicorn beyond its documented API, probed in the command before it
serves and once in each process that serves (the uvicorn and gunicorn backends).

Relied on, why, since which uvicorn, and what happens without it:

``Server.capture_signals`` (used by ``serve()``), ``startup(sockets)``, ``should_exit``
    asgiserve's worker owns the signals: its server overrides ``capture_signals`` so that
    uvicorn installs no handler, and stops it through ``should_exit``
    (``backends/uvicorn_server.py``). Since 0.29. Without: asgiserve cannot serve with uvicorn
    (refused: uvicorn would take Ctrl+C and SIGTERM from the supervisor).
``Server.servers`` (the asyncio servers ``startup()`` makes)
    a stopping worker closes them to stop accepting at once, and shuts down only once the
    connections it accepted have been read, so that none made during a reload is dropped.
    Since 0.13. Without: it shuts down at once, and a connection accepted in the instant
    before is closed unanswered (a warning).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from django_asgiserve.upstream.probing import (
    Check,
    Findings,
    Reliance,
    Upstream,
    mentions,
    run_checks,
)

UPSTREAM = Upstream("uvicorn", "uvicorn", lowest="0.30", newest="0.55")

SIGNALS = Reliance(
    "Server.capture_signals (used by serve()), startup(sockets) and should_exit",
    since="0.29",
    why="asgiserve's worker owns the signals, so its uvicorn server must install none",
)
SERVERS = Reliance(
    "Server.servers (the asyncio servers startup() makes)",
    since="0.13",
    why="a stopping worker stops accepting at once and shuts down once what it accepted is "
    "read, so no connection made during a reload is dropped",
    fallback="a stopping worker shuts down at once, closing a connection accepted in the "
    "instant before unanswered",
)


def has_signal_seam() -> bool:
    import inspect

    from uvicorn import Server

    return (
        mentions(Server.serve.__code__, "capture_signals")
        and "sockets" in inspect.signature(Server.startup).parameters
        and any(mentions(method.__code__, "should_exit") for method in loop_methods(Server))
    )


def loop_methods(server_class: Any) -> list[Any]:
    return [
        getattr(server_class, name)
        for name in ("main_loop", "on_tick")
        if hasattr(server_class, name)
    ]


def has_servers() -> bool:
    from uvicorn import Server

    return mentions(Server.startup.__code__, "servers") and mentions(
        Server.shutdown.__code__, "servers"
    )


CHECKS: Mapping[Reliance, Check] = {SIGNALS: has_signal_seam, SERVERS: has_servers}


@functools.cache
def probe() -> Findings:
    """What holds of the above in the uvicorn installed (once per process)."""
    return run_checks(UPSTREAM, CHECKS)


def close_servers(server: Any) -> bool:
    """Stop ``server`` accepting at once; whether that could be done (else shut down now)."""
    if not probe().holds(SERVERS):
        return False
    for each in server.servers:
        each.close()
    return True
