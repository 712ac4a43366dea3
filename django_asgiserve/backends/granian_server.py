"""granian's embedded server on a socket asgiserve inherited rather than one granian binds.

Imported only in ``serve()``: it imports granian. The seam, ``_init_shared_socket``, is private
to granian (see :mod:`django_asgiserve.upstream.granian`).
"""

from __future__ import annotations

from typing import Any

from granian.server.embed import Server

from django_asgiserve.upstream import granian as granian_internals


class InheritedSocketServer(Server):
    """An embedded granian server that listens on ``holder``'s socket (a ``SocketHolder``)."""

    def __init__(self, holder: Any, **options: Any) -> None:
        self._holder = holder
        super().__init__(**options)

    def _init_shared_socket(self) -> None:
        granian_internals.adopt(self, self._holder)
