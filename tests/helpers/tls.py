"""What each backend speaks over TLS, and clients that verify certificates as strictly as
Python 3.13's default context does, on every Python the suite runs on."""

from __future__ import annotations

import ssl
from pathlib import Path

#: What an HTTP/2-capable client gets over TLS (by ALPN), per backend. A backend not listed must
#: at least serve HTTP/1.1 over TLS.
HTTP_OVER_TLS = {
    "uvicorn": "HTTP/1.1",
    "hypercorn": "HTTP/2",
    "daphne": "HTTP/2",
    "granian": "HTTP/2",
    "gunicorn": "HTTP/1.1",
}
#: Backends that answer HTTP/2 with prior knowledge (h2c) on a plain socket.
H2C = {"hypercorn", "granian"}


def strict_context(cafile: Path) -> ssl.SSLContext:
    """A client context trusting ``cafile`` alone, with ``VERIFY_X509_STRICT`` (the default
    from Python 3.13 on: authority and subject key identifiers, critical basic constraints)."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    return context
