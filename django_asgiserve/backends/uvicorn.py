"""uvicorn, driven through ``uvicorn.Server.serve(sockets=...)``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from django_asgiserve.backends.base import (
    ACCEPTED_SETTLE_SECONDS,
    BACKLOG_OWNED,
    MANAGED,
    ASGIApp,
    Backend,
    signature_names,
)
from django_asgiserve.sockets import BACKLOG


class UvicornBackend(Backend):
    name = "uvicorn"
    distribution = "uvicorn"
    module = "uvicorn"
    serves_in_thread = True
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

    _server: Any = None
    _loop: asyncio.AbstractEventLoop | None = None
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

    def serve(self, app: ASGIApp, sockets: list[socket.socket]) -> None:
        import uvicorn

        backend = self

        class QuietServer(uvicorn.Server):
            # The worker owns signal handling; uvicorn must not take SIGINT/SIGTERM.
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                backend._loop = asyncio.get_running_loop()
                await super().startup(sockets)

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
        self._server = QuietServer(config)
        if self._stop_requested:
            return
        self._server.run(sockets=sockets)

    def stop(self) -> None:
        self._stop_requested = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop_accepting)
        elif self._server is not None:
            self._server.should_exit = True

    def _stop_accepting(self) -> None:
        """Stop accepting at once, so the worker replacing this one gets every new connection;
        shut down (which closes idle connections) once the ones already accepted are read."""
        assert self._loop is not None
        for server in getattr(self._server, "servers", []):
            server.close()
        self._loop.call_later(ACCEPTED_SETTLE_SECONDS, setattr, self._server, "should_exit", True)


def not_a_stop_cancellation(record: logging.LogRecord) -> bool:
    """Drop uvicorn's reports of streams it cancelled itself when the grace period ran out."""
    if "timeout graceful shutdown exceeded" in record.getMessage():
        return False
    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(error, asyncio.CancelledError)
