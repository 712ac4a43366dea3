"""granian's embedded server on a socket asgiserve inherited rather than one granian binds.

Imported only in ``serve()``: it imports granian. The seam, ``_init_shared_socket``, is private
to granian (see :mod:`~django_asgiserve.backends.granian`).
"""

from __future__ import annotations

from typing import Any

from granian._granian import SocketHolder
from granian.server.embed import Server


class InheritedSocketServer(Server):
    """An embedded granian server that listens on ``holder``'s socket."""

    def __init__(self, holder: SocketHolder, **options: Any) -> None:
        self._holder = holder
        super().__init__(**options)

    def _init_shared_socket(self) -> None:
        # granian leaves these unannotated: mypy takes their type from their initial None.
        self._ssp, self._shd, self._sfd = None, self._holder, self._holder.get_fd()  # type: ignore[assignment]
