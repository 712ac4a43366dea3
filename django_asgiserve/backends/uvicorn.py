"""uvicorn, driven through ``uvicorn.Server.serve(sockets=...)``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterable
from typing import TYPE_CHECKING, ClassVar

from django_asgiserve.backends.base import (
    ACCEPTED_SETTLE_SECONDS,
    BACKLOG_OWNED,
    MANAGED,
    ASGIApp,
    Backend,
    signature_names,
)
from django_asgiserve.sockets import BACKLOG

if TYPE_CHECKING:
    from django_asgiserve.backends.uvicorn_server import StopAcceptingServer


class UvicornBackend(Backend):
    name = "uvicorn"
    distribution = "uvicorn"
    module = "uvicorn"
    serves_in_thread = True
    upstreams = ("uvicorn",)
    managed_options: ClassVar[dict[str, str]] = {
        **dict.fromkeys(("app", "host", "port", "uds", "fd", "workers", "access_log"), MANAGED),
        **dict.fromkeys(("reload", "reload_dirs", "reload_includes", "reload_excludes"), MANAGED),
        **dict.fromkeys(("reload_delay", "log_config", "lifespan", "env_file"), MANAGED),
        "root_path": "set FORCE_SCRIPT_NAME instead, which means the same on every backend",
        "backlog": BACKLOG_OWNED,
        "proxy_headers": "proxy headers are handled by asgiserve",
        "forwarded_allow_ips": "proxy headers are handled by asgiserve",
        "timeout_graceful_shutdown": "use --graceful-timeout or ASGISERVE['GRACEFUL_TIMEOUT']",
        **dict.fromkeys(("ssl_certfile", "ssl_keyfile"), "use --certfile and --keyfile"),
    }

    _server: StopAcceptingServer | None = None
    _stop_requested = False

    @classmethod
    def accepted_options(cls) -> Iterable[str]:
        import uvicorn

        return signature_names(uvicorn.Config.__init__)

    def preload(self) -> None:
        import uvicorn.protocols.http.auto
        import uvicorn.protocols.websockets.auto
        import uvicorn.server  # noqa: F401

        with contextlib.suppress(ImportError):
            import uvloop  # noqa: F401
        self.probe_upstreams()

    def serve(self, app: ASGIApp, sockets: list[socket.socket]) -> None:
        import uvicorn

        self.probe_upstreams()

        from django_asgiserve.backends.uvicorn_server import StopAcceptingServer

        tls: dict[str, str] = {}
        if self.tls is not None:
            tls = {"ssl_certfile": self.tls.certfile, "ssl_keyfile": self.tls.keyfile}
        config = uvicorn.Config(
            app,
            lifespan="off",
            access_log=False,
            log_config=None,
            proxy_headers=False,
            backlog=BACKLOG,  # uvicorn listens again on the socket: keep the supervisor's
            # uvicorn annotates an int, and uses it as a float (asyncio.wait_for's timeout).
            timeout_graceful_shutdown=max(0.0, self.graceful_timeout - ACCEPTED_SETTLE_SECONDS),  # type: ignore[arg-type]
            **tls,  # type: ignore[arg-type]
            **self.options,
        )
        # uvicorn reports lifecycle at INFO ("Started server process"); runserver's console stays
        # quiet about that. Ending open streams after the grace period is the intended outcome
        # of a reload, not an error worth a line on every edit.
        error_logger = logging.getLogger("uvicorn.error")
        error_logger.setLevel(logging.WARNING)
        error_logger.addFilter(not_a_stop_cancellation)
        self._server = StopAcceptingServer(config)
        if self._stop_requested:
            return
        self._server.run(sockets=sockets)

    def stop(self) -> None:
        self._stop_requested = True
        if self._server is not None:
            self._server.request_stop()


def not_a_stop_cancellation(record: logging.LogRecord) -> bool:
    """Drop uvicorn's reports of streams it cancelled itself when the grace period ran out."""
    if "timeout graceful shutdown exceeded" in record.getMessage():
        return False
    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(error, asyncio.CancelledError)
