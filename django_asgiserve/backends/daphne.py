"""daphne, driven through ``daphne.server.Server`` on ``fd:`` endpoints.

Twisted installs one reactor per process, and daphne installs the asyncio one when
``daphne.server`` is imported; so that import happens in the worker, after ``fork()``, while
``preload()`` imports only what does not create an event loop.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from django_asgiserve.backends.base import (
    MANAGED,
    ASGIApp,
    Backend,
    signature_names,
)

if TYPE_CHECKING:
    from django_asgiserve.backends.daphne_server import GracefulServer
    from django_asgiserve.run_config import TLSFiles


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

    upstreams = ("daphne", "twisted")
    # Importing daphne.server (or the reactor) installs an event loop: one per worker.
    worker_only_packages = ("daphne", "twisted", "autobahn", "txaio")
    _server: GracefulServer | None = None
    _stop_requested = False

    @classmethod
    def accepted_options(cls) -> Iterable[str]:
        from daphne.server import Server

        return signature_names(Server.__init__)

    def preload(self) -> None:
        # Everything daphne.server needs, except the module itself: importing it installs a
        # reactor bound to an event loop, which must belong to the worker, not be shared by forks.
        reactor_before = "twisted.internet.reactor" in sys.modules
        import autobahn.twisted.websocket  # noqa: F401
        import twisted.internet.asyncioreactor
        import twisted.internet.endpoints
        import twisted.web.http

        if self.tls is not None:
            import twisted.internet.ssl
            import twisted.protocols.tls  # noqa: F401
        self.probe_upstreams()  # without importing daphne.server or the reactor
        assert reactor_before or "twisted.internet.reactor" not in sys.modules

    def serve(self, app: ASGIApp, sockets: list[socket.socket]) -> None:
        self.probe_upstreams()
        from twisted.internet.endpoints import AdoptedStreamServerEndpoint

        from django_asgiserve.backends.daphne_body import StreamingHTTPFactory
        from django_asgiserve.backends.daphne_server import GracefulServer
        from django_asgiserve.upstream import daphne as daphne_internals

        # daphne's "fd:" endpoint string cannot carry an IPv6 family; adopt each socket directly.
        adopted = {str(index): sock for index, sock in enumerate(sockets)}
        tls = tls_options(self.tls) if self.tls is not None else None

        def endpoint(reactor_: Any, index: str) -> Any:
            sock = adopted[index]
            fd = os.dup(sock.fileno())
            plain = AdoptedStreamServerEndpoint(reactor_, fd, sock.family)  # type: ignore[no-untyped-call]
            return plain if tls is None else TLSServerEndpoint(plain, tls)

        daphne_internals.use_endpoints(endpoint)
        # Request bodies reach the application as they arrive, not once all in (daphne_body).
        daphne_internals.use_http_factory(StreamingHTTPFactory)
        if self.tls is not None:
            app = websocket_scheme_wss(app)
        endpoints = list(adopted)
        self._server = GracefulServer(
            app,
            graceful_timeout=self.graceful_timeout,
            endpoints=endpoints,
            signal_handlers=False,
            verbosity=0,
            **self.options,
        )
        if self._stop_requested:
            return
        self._server.run()

    def stop(self) -> None:
        self._stop_requested = True
        if self._server is not None:
            from twisted.internet import reactor

            reactor.callFromThread(self._server.stop)


def tls_options(tls: TLSFiles) -> Any:
    """Twisted's server TLS options for the PEM certificate chain and key of ``tls``."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from OpenSSL import crypto
    from twisted.internet.ssl import CertificateOptions, TLSVersion

    with open(tls.certfile, "rb") as certfile, open(tls.keyfile, "rb") as keyfile:
        chain = x509.load_pem_x509_certificates(certfile.read())
        key = load_pem_private_key(keyfile.read(), password=None)
    return CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(key),  # type: ignore[arg-type]
        certificate=crypto.X509.from_cryptography(chain[0]),
        extraCertChain=[crypto.X509.from_cryptography(cert) for cert in chain[1:]],
        # HTTP/2 forbids anything older (RFC 9113, section 9.2).
        raiseMinimumTo=TLSVersion.TLSv1_2,
    )


class TLSServerEndpoint:
    """An endpoint whose connections speak TLS over those of another (an adopted socket's).

    ALPN offers what daphne's factory says it speaks: ``h2`` when Twisted's HTTP/2 support
    (``h2`` and ``priority``) is importable, then ``http/1.1``.
    """

    def __init__(self, wrapped: Any, options: Any) -> None:
        self.wrapped = wrapped
        self.options = options

    def listen(self, factory: Any) -> Any:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        return self.wrapped.listen(TLSMemoryBIOFactory(self.options, False, factory))


def websocket_scheme_wss(app: ASGIApp) -> ASGIApp:
    """daphne leaves ``scheme`` out of WebSocket scopes, which then default to ``ws``."""

    async def with_scheme(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and "scheme" not in scope:
            scope = {**scope, "scheme": "wss"}
        await app(scope, receive, send)

    return with_scheme
