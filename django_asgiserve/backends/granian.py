"""granian, driven through its embedded server (``granian.server.embed``) on inherited sockets.

granian binds its own socket unless told otherwise; the seam is ``_init_shared_socket``, which
here wraps a copy of the inherited socket in granian's ``SocketHolder`` (as granian itself does
on Windows). Both are private to granian (see :mod:`django_asgiserve.upstream.granian`).
Interface ``asginl``: the worker answers lifespan. With TLS, HTTP/2 is offered by ALPN
(``http="auto"``).

Stopping happens in two steps (granian has no "stop accepting" of its own): its listener is
swapped for an idle one, then, once what it accepted has been read, it is shut down; ``stop()``
returns only after granian has closed that listener, so the supervisor never shuts the shared
socket down under granian's accept loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from django_asgiserve.backends.base import (
    ACCEPTED_SETTLE_SECONDS,
    MANAGED,
    ASGIApp,
    Backend,
    signature_names,
)
from django_asgiserve.sockets import BACKLOG
from django_asgiserve.upstream import granian as granian_internals

if TYPE_CHECKING:
    from django_asgiserve.backends.granian_server import InheritedSocketServer

#: Seconds ``stop()`` waits at most for granian's accept loop to end; below the supervisor's
#: own wait for a stopping worker (``supervisor.draining.STOPPING_TIMEOUT``).
ACCEPT_LOOP_EXIT_TIMEOUT = 0.8
ACCEPT_LOOP_POLL_SECONDS = 0.005

#: Options of granian's embedded server (and of its CLI, for users coming from it) that the
#: supervisor and the worker own.
OWNED = (
    *("target", "address", "port", "uds", "uds_permissions", "backlog", "interface", "factory"),
    *("workers", "reload", "respawn_failed_workers", "pid_file", "process_name"),
    *("log_enabled", "log_dictconfig", "log_access", "log_access_format"),
)
TLS_FILES = "use --certfile and --keyfile"


class GranianBackend(Backend):
    name = "granian"
    distribution = "granian"
    module = "granian"
    serves_in_thread = True
    upstreams = ("granian",)
    managed_options: ClassVar[dict[str, str]] = {
        **dict.fromkeys(OWNED, MANAGED),
        "url_path_prefix": "set FORCE_SCRIPT_NAME instead, which means the same on every backend",
        "workers_kill_timeout": "use --graceful-timeout or ASGISERVE['GRACEFUL_TIMEOUT']",
        **dict.fromkeys(("ssl_cert", "ssl_key", "ssl_key_password"), TLS_FILES),
    }

    _loop: asyncio.AbstractEventLoop | None = None
    _servers: tuple[InheritedSocketServer, ...] = ()
    _serving: asyncio.Future[Any] | None = None
    _stop_requested = False
    _granian_fds: tuple[int, ...] = ()
    #: granian's listener fds once it stopped accepting, each with its idle listener's inode.
    _idle_listeners: dict[int, int] | None = None

    @classmethod
    def accepted_options(cls) -> Iterable[str]:
        from granian.server.embed import Server

        return signature_names(Server.__init__)

    def preload(self) -> None:
        import granian.asgi
        import granian.server.embed  # noqa: F401

        self.probe_upstreams()

    def serve(self, app: ASGIApp, sockets: list[socket.socket]) -> None:
        from granian.constants import Interfaces

        from django_asgiserve.backends.granian_server import InheritedSocketServer

        self.probe_upstreams()

        quiet_granian_logs()
        options: dict[str, Any] = {"log_level": "warning", "ssl_protocol_min": "tls1.2"}
        if self.tls is not None:
            options.update(ssl_cert=Path(self.tls.certfile), ssl_key=Path(self.tls.keyfile))
        options.update(self.options)
        # granian takes the fd over (and closes it when it stops listening): give it a copy.
        # listen() again is how it starts, and it sets the backlog of the shared socket.
        self._granian_fds = tuple(os.dup(sock.fileno()) for sock in sockets)
        self._servers = tuple(
            InheritedSocketServer(
                granian_internals.socket_holder(fd, BACKLOG),
                target=answer_unreadable_bodies(app),
                address=sock.getsockname()[0],
                port=sock.getsockname()[1],
                interface=Interfaces.ASGINL,
                backlog=BACKLOG,
                log_access=False,
                # Incremental: granian would otherwise replace the process's logging handlers.
                log_dictconfig={"version": 1, "incremental": True, "handlers": {}, "loggers": {}},
                **options,
            )
            for fd, sock in zip(self._granian_fds, sockets, strict=True)
        )

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            if self._stop_requested:
                return
            self._serving = asyncio.gather(*(server.serve() for server in self._servers))
            # Cancelled when the grace period is over, with connections still open.
            with contextlib.suppress(asyncio.CancelledError):
                await self._serving

        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(main())

    def stop(self) -> None:
        """Returns once granian's accept loop is over (or after ``ACCEPT_LOOP_EXIT_TIMEOUT``).

        The worker then tells the supervisor it stopped accepting, and at the end of a drain
        the supervisor shuts the shared socket down. granian's accept loop must be gone by
        then: the socket it still watches would report "closed" for good, and its runtime
        would retry ``accept()`` on the idle listener without end, never again writing a
        response or reading a body for the connections it holds.
        """
        self._stop_requested = True
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._stop_accepting)
        except RuntimeError:  # the loop is closed: serving is over
            return
        deadline = time.monotonic() + ACCEPT_LOOP_EXIT_TIMEOUT
        while not self._accept_loop_over() and time.monotonic() < deadline:
            time.sleep(ACCEPT_LOOP_POLL_SECONDS)

    def _stop_accepting(self) -> None:
        """Stop accepting at once; shut down (which closes idle connections) only once the
        connections already accepted have had their requests read; give up at the deadline."""
        assert self._loop is not None
        if self._serving is None:
            self._idle_listeners = {}
            return
        self._idle_listeners = {
            fd: granian_internals.swap_idle_listener(fd) for fd in self._granian_fds
        }
        self._loop.call_later(ACCEPTED_SETTLE_SECONDS, self._shut_down)
        deadline = max(self.graceful_timeout, ACCEPTED_SETTLE_SECONDS)
        self._loop.call_later(deadline, self._serving.cancel)

    def _shut_down(self) -> None:
        for server in self._servers:
            server.stop()  # type: ignore[no-untyped-call]

    def _accept_loop_over(self) -> bool:
        """Whether granian has closed every listener it accepted on: it does as its accept loop
        ends (the fd then is closed, or already another file's)."""
        if self._idle_listeners is None:
            return False
        return all(
            granian_internals.listener_closed(fd, inode)
            for fd, inode in self._idle_listeners.items()
        )


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed, as granian's own command line (``--loop auto``) picks it: the
    application's coroutines run on this loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def answer_unreadable_bodies(app: ASGIApp) -> ASGIApp:
    """A 400 where granian would answer 500 to a request body it cannot parse (a chunk size
    that is not hex, say): granian tells the application the client disconnected, and answers
    500 when it returns without a response. If the client really left, nobody reads the 400."""

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        disconnected = started = False

        async def watching_receive() -> dict[str, Any]:
            nonlocal disconnected
            message: dict[str, Any] = await receive()
            disconnected = disconnected or message["type"] == "http.disconnect"
            return message

        async def watching_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await app(scope, watching_receive, watching_send)
        if disconnected and not started:
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": b"Bad Request"})

    return guarded


def quiet_granian_logs() -> None:
    """Drop what is no news here: that the embedded server is "experimental" (on every reload),
    and the cancellation of what was still running when the grace period ended."""
    for name in ("_granian", "_granian.utils"):
        logging.getLogger(name).addFilter(not_noise)


def not_noise(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    if message == "Embedded server is experimental!":
        return False
    # granian reports an application's exception with the traceback in the message.
    last_line = message.rstrip().rpartition("\n")[2]
    return not last_line.split(":")[0].endswith("CancelledError")
