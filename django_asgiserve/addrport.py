"""runserver's ``[addr:]port`` grammar, defaults and error messages, and binding the socket."""

from __future__ import annotations

import errno
import re
import socket
from dataclasses import dataclass

from django.core.management.base import CommandError

# The grammar is runserver's (django/core/management/commands/runserver.py).
ADDRPORT_RE = re.compile(
    r"""^(?:
(?P<addr>
    (?P<ipv4>\d{1,3}(?:\.\d{1,3}){3}) |         # IPv4 address
    (?P<ipv6>\[[a-fA-F0-9:]+\]) |               # IPv6 address
    (?P<fqdn>[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*) # FQDN
):)?(?P<port>\d+)$""",
    re.X,
)
DEFAULT_ADDR = "127.0.0.1"
DEFAULT_ADDR_IPV6 = "::1"
DEFAULT_PORT = 8000
#: Connections that may wait for a worker (during a reload, say) before the kernel refuses more.
BACKLOG = 2048

BIND_ERRORS = {
    errno.EACCES: "You don't have permission to access that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
}


class BindError(Exception):
    """Binding failed; the message is runserver's."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    ipv6: bool = False

    @property
    def display_host(self) -> str:
        if self.ipv6 and ":" in self.host:
            return f"[{self.host}]"
        return "0.0.0.0" if self.host == "0" else self.host

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://{self.display_host}:{self.port}/"

    @classmethod
    def of(cls, sock: socket.socket) -> Address:
        """The address a bound TCP socket listens on."""
        host, port = sock.getsockname()[:2]
        return cls(host, port, sock.family == socket.AF_INET6)


def parse(addrport: str | None, *, ipv6: bool = False) -> Address:
    """Parse ``addrport`` exactly as runserver does, with its messages on errors."""
    if ipv6 and not socket.has_ipv6:
        raise CommandError("Your Python does not support IPv6.")
    if not addrport:
        return Address(DEFAULT_ADDR_IPV6 if ipv6 else DEFAULT_ADDR, DEFAULT_PORT, ipv6)
    match = ADDRPORT_RE.match(addrport)
    if match is None:
        raise CommandError(f'"{addrport}" is not a valid port number or address:port pair.')
    addr, _ipv4, raw_ipv6, fqdn, port = match.groups()
    if int(port) > 65535:
        raise CommandError(f"{port!r} is not a valid port number.")
    if not addr:
        return Address(DEFAULT_ADDR_IPV6 if ipv6 else DEFAULT_ADDR, int(port), ipv6)
    if raw_ipv6:
        return Address(addr[1:-1], int(port), True)
    if ipv6 and not fqdn:
        raise CommandError(f'"{addr}" is not a valid IPv6 address.')
    return Address(addr, int(port), ipv6)


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
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
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
