"""``--metrics ADDR:PORT``: the supervisor's own listener, answering ``GET /metrics`` with the
Prometheus text of every worker's counts (summed from the metrics board at each scrape) and the
supervisor's, and 404 to anything else.

It is served by the supervisor, not by Django or the workers: it answers while workers boot,
reload, crash or drain, and its figures cover every serving process. The socket is bound by the
command before anything is served (a bad address or a port in use is one ``CommandError``) and
closed when the supervisor stops. Each connection gets one answer and is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from django.core.management.base import CommandError

from django_asgiserve import addrport
from django_asgiserve import sockets as listening
from django_asgiserve.insight.metrics_text import CONTENT_TYPE, SupervisorFigures, render
from django_asgiserve.process.metrics_board import Board

PATH = "/metrics"
#: Seconds a scraper gets to send its request head, and the most it may send.
READ_TIMEOUT = 10.0
HEAD_LIMIT = 16384


def parse(text: str) -> addrport.Address:
    """``text`` in runserver's ``[addr:]port`` grammar (a port alone: 127.0.0.1), or
    ``CommandError``."""
    try:
        return addrport.parse(text)
    except CommandError as error:
        raise CommandError(f"--metrics: {error}") from None


def bind(text: str) -> tuple[socket.socket, str]:
    """A listening socket for ``text`` (see :func:`parse`) and its scrape URL, or
    ``CommandError``."""
    address = parse(text)
    try:
        sock = listening.bind(address)
    except listening.BindError as error:
        raise CommandError(f"--metrics {text}: {error}") from None
    # Only the supervisor serves it: no child needs it across an exec.
    sock.set_inheritable(False)
    bound = addrport.Address(address.host, sock.getsockname()[1], address.ipv6)
    return sock, bound.url().rstrip("/") + PATH


class MetricsListener:
    """The listener and the board it reads, in the supervisor."""

    def __init__(self, sock: socket.socket, supervisor: Callable[[], SupervisorFigures]) -> None:
        self.sock = sock
        self.supervisor = supervisor
        #: Made before the first fork: every serving process counts on it.
        self.board = Board.create()
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.answer, sock=self.sock, limit=HEAD_LIMIT)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self.connections):
            writer.close()
        if self.server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 1.0)
        self.sock.close()
        self.board.close()

    def exposition(self) -> bytes:
        return render(self.board.totals(), self.supervisor()).encode()

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.add(writer)
        try:
            head = await asyncio.wait_for(read_head(reader), READ_TIMEOUT)
            method, _, rest = head.partition(" ")
            path = rest.partition(" ")[0].partition("?")[0]
            if method in ("GET", "HEAD") and path == PATH:
                status, content_type, body = "200 OK", CONTENT_TYPE, self.exposition()
            else:
                status, content_type, body = "404 Not Found", "text/plain", b"Not Found\n"
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
                "Connection: close\r\n\r\n".encode()
                + (b"" if method == "HEAD" else body)
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError, asyncio.IncompleteReadError):
            pass  # a scraper that went away or sent no request: nothing to answer
        finally:
            self.connections.discard(writer)
            writer.close()


async def read_head(reader: asyncio.StreamReader) -> str:
    """The request line, once the whole request head has arrived."""
    request_line = (await reader.readline()).decode("latin-1").strip()
    while (await reader.readline()).strip():
        pass
    return request_line
