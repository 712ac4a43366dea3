"""The local certificate authority of ``--https`` in tests: a directory and a home directory of
each test's own (the user's are never touched), clients that verify against the authority, and
what a served certificate is."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from django_asgiserve.https.location import ENVIRON_KEY
from tests.helpers.server import Server
from tests.helpers.tls import strict_context


@dataclass(frozen=True)
class LocalCA:
    """Where a test's servers keep the authority (``directory``) and whose home they run in."""

    directory: Path
    home: Path

    @property
    def env(self) -> dict[str, str]:
        return {ENVIRON_KEY: str(self.directory), "HOME": str(self.home)}

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    def context(self) -> ssl.SSLContext:
        return strict_context(self.ca_file)


def served_certificate(
    port: int, context: ssl.SSLContext, host: str = "127.0.0.1"
) -> x509.Certificate:
    """The certificate the server on ``port`` presents, verified with ``context``."""
    with (
        socket.create_connection((host, port), timeout=10) as plain,
        context.wrap_socket(plain, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def serve_https(
    start: Callable[..., Server], local_ca: LocalCA, *args: str, addrport: str = "127.0.0.1:0"
) -> Server:
    """A ``--https`` server (through the ``start`` fixture), serving, that ``get`` verifies."""
    server = start("--https", *args, env=local_ca.env, addrport=addrport)
    # The authority exists once the banner is out: only then can a client trust it.
    server.wait_output("Quit the server with")
    server.verify = local_ca.context()
    server.wait_serving()
    assert server.scheme == "https", server.output
    return server
