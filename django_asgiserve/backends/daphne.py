"""daphne, driven through ``daphne.server.Server`` on ``fd:`` endpoints.

Twisted installs one reactor per process, and daphne installs the asyncio one when
``daphne.server`` is imported; so that import happens in the worker, after ``fork()``, while
``preload()`` imports only what does not create an event loop.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterable
from typing import Any, ClassVar

from django_asgiserve.backends.base import (
    ACCEPTED_SETTLE_SECONDS,
    ASGIApp,
    Backend,
    signature_names,
)

MANAGED = "the supervisor binds sockets, runs workers, reloads and logs requests"
POLL_SECONDS = 0.05


class DaphneBackend(Backend):
    name = "daphne"
    distribution = "daphne"
    module = "daphne"
    managed_options: ClassVar[dict[str, str]] = {
        **dict.fromkeys(("application", "endpoints", "signal_handlers", "action_logger"), MANAGED),
        **dict.fromkeys(("ready_callable", "verbosity"), MANAGED),
        "root_path": "set FORCE_SCRIPT_NAME instead, which means the same on every backend",
        "proxy_forwarded_address_header": "proxy headers are handled by asgiserve",
        "proxy_forwarded_port_header": "proxy headers are handled by asgiserve",
        "proxy_forwarded_proto_header": "proxy headers are handled by asgiserve",
    }

    # Importing daphne.server (or the reactor) installs an event loop: one per worker.
    worker_only_packages = ("daphne", "twisted", "autobahn", "txaio")
    _server: Any = None
    _stop_requested = False

    @classmethod
    def accepted_options(cls) -> Iterable[str]:
        from daphne.server import Server

        return signature_names(Server.__init__)

    def preload(self) -> None:
        # Everything daphne.server needs, except the module itself: importing it installs a
        # reactor bound to an event loop, which must belong to the worker, not be shared by forks.
        import autobahn.twisted.websocket  # noqa: F401
        import twisted.internet.asyncioreactor
        import twisted.internet.endpoints
        import twisted.web.http  # noqa: F401

        assert "twisted.internet.reactor" not in sys.modules

    def serve(self, app: ASGIApp, sockets: list[socket.socket]) -> None:
        import daphne.server
        from daphne.server import Server
        from twisted.internet import reactor
        from twisted.internet.endpoints import AdoptedStreamServerEndpoint

        backend = self
        ports: list[Any] = []

        class GracefulServer(Server):  # type: ignore[misc]
            def listen_success(self, port: Any) -> None:
                ports.append(port)

            def stop(self) -> None:
                if not reactor.running:
                    self.abort_start = True
                    return
                for port in ports:
                    port.stopListening()
                deadline = time.monotonic() + backend.graceful_timeout
                # A connection accepted a moment ago has no application yet: its request is
                # still unread. Give it the time to start before judging what is idle.
                reactor.callLater(ACCEPTED_SETTLE_SECONDS, self._stop_when_idle, deadline)

            def _stop_when_idle(self, deadline: float) -> None:
                busy = any(
                    details.get("application_instance") is not None
                    and not details["application_instance"].done()
                    for details in self.connections.values()
                )
                if busy and time.monotonic() < deadline:
                    reactor.callLater(POLL_SECONDS, self._stop_when_idle, deadline)
                elif reactor.running:
                    reactor.stop()

        # daphne's "fd:" endpoint string cannot carry an IPv6 family; adopt each socket directly.
        adopted = {str(index): sock for index, sock in enumerate(sockets)}
        daphne.server.serverFromString = lambda reactor_, index: AdoptedStreamServerEndpoint(
            reactor_, os.dup(adopted[index].fileno()), adopted[index].family
        )
        endpoints = list(adopted)
        self._server = GracefulServer(
            app, endpoints=endpoints, signal_handlers=False, verbosity=0, **self.options
        )
        if self._stop_requested:
            return
        self._server.run()

    def stop(self) -> None:
        self._stop_requested = True
        if self._server is not None:
            from twisted.internet import reactor

            reactor.callFromThread(self._server.stop)
