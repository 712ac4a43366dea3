"""hypercorn, driven through ``hypercorn.asyncio.serve`` with ``fd://`` binds.

With TLS it offers HTTP/2 by ALPN; on a plain socket it also answers HTTP/2 with prior knowledge
(h2c). A UDP socket among the inherited ones is served as HTTP/3 (QUIC) through ``quic_bind``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable
from typing import Any, ClassVar

from django_asgiserve.backends.base import (
    ACCEPTED_SETTLE_SECONDS,
    BACKLOG_OWNED,
    MANAGED,
    ASGIApp,
    Backend,
)
from django_asgiserve.sockets import BACKLOG


class HypercornBackend(Backend):
    name = "hypercorn"
    distribution = "hypercorn"
    module = "hypercorn"
    serves_in_thread = True
    upstreams = ("hypercorn",)
    managed_options: ClassVar[dict[str, str]] = {
        **dict.fromkeys(("bind", "insecure_bind", "quic_bind", "workers", "accesslog"), MANAGED),
        **dict.fromkeys(("use_reloader", "errorlog", "logconfig", "pid_path"), MANAGED),
        "root_path": "set FORCE_SCRIPT_NAME instead, which means the same on every backend",
        "backlog": BACKLOG_OWNED,
        "graceful_timeout": "use --graceful-timeout or ASGISERVE['GRACEFUL_TIMEOUT']",
        **dict.fromkeys(("certfile", "keyfile"), "use --certfile and --keyfile"),
    }

    serves_http3 = True
    _loop: asyncio.AbstractEventLoop | None = None
    _shutdown: asyncio.Event | None = None
    _stop_requested = False
    _listening_fds: tuple[int, ...] = ()

    @classmethod
    def accepted_options(cls) -> Iterable[str]:
        from hypercorn.config import Config

        return {name for name in vars(Config) if not name.startswith("_")} | set(
            Config.__annotations__
        )

    def preload(self) -> None:
        import hypercorn.asyncio
        import hypercorn.protocol.h2
        import hypercorn.protocol.h11
        import hypercorn.protocol.ws_stream  # noqa: F401

        self.probe_upstreams()

    def serve(self, app: ASGIApp, sockets: list[socket.socket]) -> None:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        self.probe_upstreams()
        config = Config()
        for key, value in self.options.items():
            setattr(config, key, value)
        if self.tls is not None:
            config.certfile, config.keyfile = self.tls.certfile, self.tls.keyfile
        # Each worker owns a dup of the listening socket; hypercorn adopts (and later closes) it.
        config.bind = [f"fd://{s.fileno()}" for s in sockets if s.type == socket.SOCK_STREAM]
        config.quic_bind = [f"fd://{s.fileno()}" for s in sockets if s.type == socket.SOCK_DGRAM]
        if config.quic_bind:
            app = lowercase_response_headers(app)
        config.accesslog = None
        # asyncio listens again on the socket it serves: with hypercorn's default (100) a burst
        # of connections during a reload would overflow the supervisor's backlog.
        config.backlog = BACKLOG
        # A Logger instance makes hypercorn log through the logging tree instead of installing
        # its own stderr handler: warnings still show, "Running on" INFO lines do not.
        config.errorlog = logging.getLogger("hypercorn.error")
        config.graceful_timeout = max(0.0, self.graceful_timeout - ACCEPTED_SETTLE_SECONDS)
        self._listening_fds = tuple(sock.fileno() for sock in sockets)

        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._shutdown = asyncio.Event()
            if self._stop_requested:
                return
            await serve(app, config, shutdown_trigger=self._shutdown.wait)

        asyncio.run(main())

    def stop(self) -> None:
        self._stop_requested = True
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._stop_accepting)

    def _stop_accepting(self) -> None:
        """Stop accepting at once, but shut down (which closes idle connections) only once the
        connections already accepted have had their requests read."""
        from django_asgiserve.upstream import hypercorn as hypercorn_internals

        assert self._loop is not None and self._shutdown is not None
        if not hypercorn_internals.stop_accepting(self._loop, self._listening_fds):
            self._shutdown.set()  # its fallback: shut down at once
            return
        self._loop.call_later(ACCEPTED_SETTLE_SECONDS, self._shutdown.set)


def lowercase_response_headers(app: ASGIApp) -> ASGIApp:
    """Lowercase response header names, as ASGI asks and HTTP/3 requires (RFC 9114, 4.2).

    Django sends ``Content-Type``; hypercorn's HTTP/3 passes names through unchanged, and
    clients reject the response as malformed.
    """

    async def lowercased(scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def send_lowercased(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(name.lower(), value) for name, value in message.get("headers", ())]
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, send_lowercased)

    return lowercased
