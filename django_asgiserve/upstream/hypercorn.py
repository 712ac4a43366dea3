"""What asgiserve relies on in hypercorn (and asyncio) beyond their documented API, probed in the
command before it serves and once in each process that serves.

Relied on, why, since which hypercorn, and what happens without it:

``Config.create_sockets`` serving ``fd://N`` as ``N`` itself; asyncio's reader on ``N``
    a worker stops accepting at once by removing that reader (``loop.remove_reader``), and
    shuts down (which closes idle connections) only once the connections it accepted have been
    read, so that none made during a reload is dropped. Since 0.11. Without: it shuts down at
    once, and a connection accepted in the instant before is closed unanswered (a warning).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
from collections.abc import Mapping

from django_asgiserve.upstream.probing import Check, Findings, Reliance, Upstream, run_checks

UPSTREAM = Upstream("hypercorn", "hypercorn", lowest="0.17", newest="0.18")

FD_READER = Reliance(
    "a fd:// bind served as that very descriptor (Config.create_sockets), accepted on through "
    "an event-loop reader (loop.remove_reader)",
    since="0.11",
    why="a stopping worker stops accepting at once (loop.remove_reader) and shuts down once "
    "what it accepted is read, so no connection made during a reload is dropped",
    fallback="a stopping worker shuts down at once, closing a connection accepted in the "
    "instant before unanswered",
)


def has_fd_reader() -> bool:
    """A ``fd://`` bind of a throwaway listener, served by asyncio, has a reader on that fd."""
    from hypercorn.config import Config

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        fd = os.dup(listener.fileno())
        config = Config()
        config.bind = [f"fd://{fd}"]
        try:
            adopted = config.create_sockets().insecure_sockets
        except BaseException:
            os.close(fd)
            raise
        try:
            if [sock.fileno() for sock in adopted] != [fd]:
                return False
            return asyncio.run(reader_removable(adopted[0]))
        finally:
            for sock in adopted:
                sock.close()


async def reader_removable(sock: socket.socket) -> bool:
    server = await asyncio.start_server(lambda reader, writer: None, sock=sock)
    try:
        return asyncio.get_running_loop().remove_reader(sock.fileno())
    finally:
        with contextlib.suppress(OSError):
            server.close()


CHECKS: Mapping[Reliance, Check] = {FD_READER: has_fd_reader}


@functools.cache
def probe() -> Findings:
    """What holds of the above in the hypercorn installed (once per process)."""
    return run_checks(UPSTREAM, CHECKS)


def stop_accepting(loop: asyncio.AbstractEventLoop, fds: tuple[int, ...]) -> bool:
    """Stop accepting on ``fds`` at once; whether that could be done (else shut down now)."""
    if not probe().holds(FD_READER):
        return False
    return all([loop.remove_reader(fd) for fd in fds])
