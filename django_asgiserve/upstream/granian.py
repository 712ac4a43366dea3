"""What asgiserve relies on in granian beyond its documented API, probed in the command before it
serves and once in each process that serves (the worker or the preloader it is forked from).

Relied on, why, since which granian, and what happens without it:

``granian.server.embed.Server`` (``serve()``, ``stop()``)
    the embedded server runs in asgiserve's worker, on its event loop; granian calls it
    experimental. Since 2.6. Without: asgiserve cannot serve with granian (refused).
``granian._granian.SocketHolder(fd, uds, backlog)`` and its ``get_fd()``
    granian serves a socket it did not bind, held as its own listener holds one; the holder
    hands back the descriptor it was given, the one granian accepts on and closes as its accept
    loop ends (``stop()`` swaps an idle listener over it with ``dup2`` to stop accepting, and
    waits for that end at most 0.8 s). Since 2.6. Without: refused.
``Server._init_shared_socket`` (setting ``_ssp``, ``_shd``, ``_sfd``)
    the seam where granian binds its listener, where asgiserve hands it the holder instead
    (``backends/granian_server.py``). Since 2.6. Without: refused.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Mapping
from typing import Any

from django_asgiserve.upstream.probing import (
    Check,
    Findings,
    Reliance,
    Upstream,
    mentions,
    run_checks,
)

UPSTREAM = Upstream("granian", "granian", lowest="2.6", newest="2.8.9")

EMBEDDED_SERVER = Reliance(
    "granian.server.embed.Server (serve() and stop())",
    since="2.6",
    why="granian's embedded server runs in asgiserve's worker, on its event loop",
)
SOCKET_HOLDER = Reliance(
    "granian._granian.SocketHolder(fd, uds, backlog) and its get_fd()",
    since="2.6",
    why="granian serves a socket asgiserve bound, held as granian holds its own listener",
)
SHARED_SOCKET_SEAM = Reliance(
    "Server._init_shared_socket (setting _ssp, _shd and _sfd)",
    since="2.6",
    why="the embedded server listens on the holder asgiserve gives it instead of binding",
)


def has_embedded_server() -> bool:
    import inspect

    from granian.server.embed import Server

    return inspect.iscoroutinefunction(Server.serve) and callable(Server.stop)


def has_socket_holder() -> bool:
    """A holder made on a copy of a throwaway listener hands back that very descriptor."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        fd = os.dup(listener.fileno())
        try:
            holder = socket_holder(fd, backlog=1)
            return bool(holder.get_fd() == fd)
        finally:
            os.close(fd)


def has_shared_socket_seam() -> bool:
    from granian.server.embed import Server

    return mentions(Server._init_shared_socket.__code__, "_ssp", "_shd", "_sfd")


CHECKS: Mapping[Reliance, Check] = {
    EMBEDDED_SERVER: has_embedded_server,
    SOCKET_HOLDER: has_socket_holder,
    SHARED_SOCKET_SEAM: has_shared_socket_seam,
}


@functools.cache
def probe() -> Findings:
    """What holds of the above in the granian installed (once per process)."""
    return run_checks(UPSTREAM, CHECKS)


def socket_holder(fd: int, backlog: int) -> Any:
    """granian's holder of the listening socket ``fd`` (TCP, not a Unix socket)."""
    from granian._granian import SocketHolder

    return SocketHolder(fd, False, backlog)  # type: ignore[call-arg]


def swap_idle_listener(fd: int) -> int:
    """Turn granian's copy of the shared socket into a private listener nobody knows about, and
    return that listener's inode.

    granian offers no way to stop accepting but a shutdown, which also closes the connections
    whose request it has not read yet. Its accept loop keeps waiting on ``fd``, now an idle,
    non-blocking listener; new connections stay in the shared backlog for the next worker.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as idle:
        idle.bind(("127.0.0.1", 0))
        idle.listen(1)
        idle.setblocking(False)  # the flag belongs to the socket, so fd gets it too
        os.dup2(idle.fileno(), fd, inheritable=False)
        return os.fstat(idle.fileno()).st_ino


def listener_closed(fd: int, inode: int) -> bool:
    """Whether granian has closed the idle listener swapped over ``fd``: it does as its accept
    loop ends (the descriptor is then closed, or already another file's)."""
    try:
        return os.fstat(fd).st_ino != inode
    except OSError:
        return True


def adopt(server: Any, holder: Any) -> None:
    """In ``Server._init_shared_socket``: make ``holder`` the server's listener."""
    server._ssp, server._shd, server._sfd = None, holder, holder.get_fd()
