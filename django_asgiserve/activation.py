"""systemd socket activation: the listening sockets a service manager handed this process.

systemd (and compatible managers) bind the sockets themselves, start the service with them as
file descriptors 3, 4, ... and say so in ``LISTEN_PID``/``LISTEN_FDS``. Serving those instead of
binding lets the manager own the port: it is never free between restarts, and connections made
while the service starts wait in the backlog.
"""

from __future__ import annotations

import os
import socket

from django.core.management.base import CommandError

#: The first descriptor systemd passes (``SD_LISTEN_FDS_START``).
FIRST_FD = 3
VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def inherited_sockets() -> list[socket.socket]:
    """The activated TCP sockets, or ``[]`` when this process was not socket-activated.

    The variables are removed from the environment, as ``sd_listen_fds(1)`` does, so that the
    processes this one starts do not take the sockets for theirs.
    """
    count, pid = os.environ.get("LISTEN_FDS"), os.environ.get("LISTEN_PID")
    if not count or (pid and pid != str(os.getpid())):
        return []
    for name in VARIABLES:
        os.environ.pop(name, None)
    if not count.isdigit() or int(count) < 1:
        raise CommandError(f"LISTEN_FDS={count!r} is not a number of sockets.")
    sockets = []
    for fd in range(FIRST_FD, FIRST_FD + int(count)):
        try:
            sock = socket.socket(fileno=fd)
        except OSError as error:
            raise CommandError(f"LISTEN_FDS: descriptor {fd} is not a socket ({error}).") from None
        if (
            sock.family not in (socket.AF_INET, socket.AF_INET6)
            or sock.type != socket.SOCK_STREAM
            or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        ):
            sock.detach()
            raise CommandError(
                f"LISTEN_FDS: descriptor {fd} is not a listening TCP socket "
                "(use ListenStream=[address:]port in the .socket unit)."
            )
        sock.setblocking(True)
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets
