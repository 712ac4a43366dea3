"""The listening sockets: binding them (runserver's bind errors, ``SO_REUSEPORT`` twins, the UDP
socket of HTTP/3, the backlog) or taking them from systemd socket activation.

Activation: the listening sockets a service manager handed this process.

systemd (and compatible managers) bind the sockets themselves, start the service with them as
file descriptors 3, 4, ... and say so in ``LISTEN_PID``/``LISTEN_FDS``. Serving those instead of
binding lets the manager own the port: it is never free between restarts, and connections made
while the service starts wait in the backlog.
"""

from __future__ import annotations

import errno
import os
import socket
import sys

from django.core.management.base import CommandError

from django_asgiserve.addrport import Address

#: Connections that may wait for a worker (during a reload, say) before the kernel refuses more.
BACKLOG = 2048

BIND_ERRORS = {
    errno.EACCES: "You don't have permission to access that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
}


class BindError(Exception):
    """Binding failed; the message is runserver's."""


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


def bind(address: Address, *, reuse_port: bool = False) -> socket.socket:
    """A listening, inheritable socket for ``address``; ``BindError`` with runserver's text.

    ``reuse_port``: with ``SO_REUSEPORT``, so that :func:`bind_twins` can add sockets on the
    same port, among which the kernel spreads new connections evenly.
    """
    host = "0.0.0.0" if address.host == "0" else address.host
    family = socket.AF_INET6 if address.ipv6 else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host, address.port, family, socket.SOCK_STREAM)
        family, kind, proto, _name, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as error:
        raise BindError(BIND_ERRORS.get(error.errno or 0, str(error))) from error
    try:
        if sys.platform == "win32":
            # There SO_REUSEADDR would let another process bind the port too: keep it ours.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
        sock.listen(BACKLOG)
    except OSError as error:
        sock.close()
        raise BindError(BIND_ERRORS.get(error.errno or 0, str(error))) from error
    sock.set_inheritable(True)
    return sock


def bind_twins(first: socket.socket, count: int) -> list[socket.socket]:
    """``first`` (bound with ``reuse_port``) and ``count - 1`` more listening sockets on its
    address and port."""
    if sys.platform == "win32":  # no SO_REUSEPORT: one socket (see platforms)
        return [first]
    sockets = [first]
    for _ in range(count - 1):
        sock = socket.socket(first.family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(first.getsockname())
            sock.listen(BACKLOG)
        except OSError as error:
            sock.close()
            raise BindError(BIND_ERRORS.get(error.errno or 0, str(error))) from error
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


def bind_datagram(stream: socket.socket) -> socket.socket:
    """An inheritable UDP socket on the address and port of the listening ``stream`` (HTTP/3)."""
    sock = socket.socket(stream.family, socket.SOCK_DGRAM)
    try:
        sock.bind(stream.getsockname())
    except OSError as error:
        sock.close()
        raise BindError(BIND_ERRORS.get(error.errno or 0, str(error))) from error
    sock.set_inheritable(True)
    return sock
