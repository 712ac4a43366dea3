"""What asgiserve relies on in Twisted (under daphne) beyond its documented API, probed in the
command before it serves and once in each process that serves, without Twisted's reactor (which
daphne installs in each worker).

Relied on, why, since which Twisted, and what happens without it:

``HTTPChannel._command``, ``_path``, ``_version`` (the request line, held until the body's end)
    an HTTP/1.1 request with a large or chunked body starts the application at its first body
    bytes, which then reach it as they arrive (``backends/daphne_body.py``). Since 16.3.
    Without: such a body goes daphne's way, read whole before the application starts (a
    warning).
``H2Stream.command`` and ``path``
    the same for HTTP/2 requests. Since 17.1. Without: the same fallback (a warning).
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
    methods_mention,
    run_checks,
    unexecuted_code,
)

UPSTREAM = Upstream("Twisted", "twisted", lowest="22.4", newest="26.10")
REQUEST_LINE_NAMES = ("_command", "_path", "_version")

REQUEST_LINE = Reliance(
    "HTTPChannel._command, _path and _version (the request line until the body's end)",
    since="16.3",
    why="an HTTP/1.1 request body reaches the application as it arrives",
    fallback="HTTP/1.1 request bodies go daphne's way, read whole before the application starts",
)
H2_REQUEST_LINE = Reliance(
    "H2Stream.command and path",
    since="17.1",
    why="an HTTP/2 request body reaches the application as it arrives",
    fallback="HTTP/2 request bodies go daphne's way, read whole before the application starts",
)


def has_request_line() -> bool:
    """An HTTP/1.1 channel fed a request with a body holds its request line when the body's
    length is known (a parse on a transport of strings: no reactor)."""
    from twisted.internet.error import ConnectionDone
    from twisted.internet.testing import StringTransport
    from twisted.python.failure import Failure
    from twisted.web.http import HTTPChannel, Request

    held: list[tuple[object, ...]] = []

    class Probe(Request):
        def gotLength(self, length: int | None) -> None:
            held.append(tuple(getattr(self.channel, name, None) for name in REQUEST_LINE_NAMES))
            super().gotLength(length)  # type: ignore[no-untyped-call]

    # Twisted's HTTP classes are untyped: driven as Any.
    channel: Any = HTTPChannel()  # type: ignore[no-untyped-call]
    channel.requestFactory = Probe
    channel.timeOut = None  # no timer: that would need the reactor
    channel.makeConnection(StringTransport())  # type: ignore[no-untyped-call]
    try:
        channel.dataReceived(b"POST /probe HTTP/1.1\r\nHost: probe\r\nContent-Length: 2\r\n\r\n")
    finally:
        channel.connectionLost(Failure(ConnectionDone()))  # type: ignore[no-untyped-call]
    return held == [(b"POST", b"/probe", b"HTTP/1.1")]


def has_h2_request_line() -> bool:
    return methods_mention(unexecuted_code("twisted.web._http2"), "H2Stream", "command", "path")


CHECKS: Mapping[Reliance, Check] = {
    REQUEST_LINE: has_request_line,
    H2_REQUEST_LINE: has_h2_request_line,
}


@functools.cache
def probe() -> Findings:
    """What holds of the above in the Twisted installed (once per process)."""
    return run_checks(UPSTREAM, CHECKS)


def request_line(channel: Any) -> tuple[bytes, bytes, bytes] | None:
    """The request line an HTTP/1.1 channel holds until the body's end (None: not known)."""
    if not probe().holds(REQUEST_LINE):
        return None
    parts = tuple(getattr(channel, name, None) for name in REQUEST_LINE_NAMES)
    if not all(isinstance(part, bytes) for part in parts):
        return None
    return parts  # type: ignore[return-value]


def stream_request_line(stream: Any) -> tuple[bytes, bytes, bytes] | None:
    """The request line of an HTTP/2 stream before its body's end (None: not known)."""
    if not probe().holds(H2_REQUEST_LINE):
        return None
    command, path = getattr(stream, "command", None), getattr(stream, "path", None)
    if not isinstance(command, bytes) or not isinstance(path, bytes):
        return None
    return command, path, b"HTTP/2"
