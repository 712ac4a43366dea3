"""runserver's ``[addr:]port`` grammar, its defaults and its error messages (binding is
:mod:`django_asgiserve.sockets`)."""

from __future__ import annotations

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
