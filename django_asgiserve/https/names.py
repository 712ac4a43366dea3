"""The names a development server's certificate covers, from the addresses it listens on.

Always ``localhost``, ``127.0.0.1`` and ``::1``; then each address the server is bound to (an IP
address, or the name given on the command line), and for an address that means every interface
(``0.0.0.0``, ``::``) the machine's hostname too, which is how other devices on the network
reach it. Names a certificate cannot carry (``my_host``, say) are left out.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

ALWAYS = ("localhost", "127.0.0.1", "::1")
#: One DNS label as browsers accept it in a certificate (letters, digits, inner hyphens).
LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
#: What runserver's grammar calls every interface ("0" is its short form of 0.0.0.0).
EVERY_INTERFACE = {"0", "0.0.0.0", "::", ""}


@dataclass(frozen=True)
class CertificateNames:
    """The DNS names and IP addresses of one server certificate, in a stable order."""

    dns: tuple[str, ...]
    ips: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.dns, *self.ips)


def for_hosts(hosts: Iterable[str], hostname: str | None = None) -> CertificateNames:
    """The names a certificate must cover for a server listening on ``hosts``.

    ``hostname`` is the machine's (``socket.gethostname()`` when None), added for a server
    listening on every interface.
    """
    dns: set[str] = set()
    ips: set[str] = set()
    for host in [*ALWAYS, *hosts]:
        if host in EVERY_INTERFACE:
            name = (hostname if hostname is not None else socket.gethostname()).lower()
            if is_dns_name(name):
                dns.add(name)
            continue
        ip = ip_address(host)
        if ip is not None:
            ips.add(ip)
        elif is_dns_name(host.lower().rstrip(".")):
            dns.add(host.lower().rstrip("."))
    return CertificateNames(tuple(sorted(dns)), tuple(sorted(ips, key=ip_sort_key)))


def ip_address(host: str) -> str | None:
    """``host`` as a canonical IP address (an IPv4-mapped IPv6 address as IPv4), or None."""
    try:
        address = ipaddress.ip_address(host.strip("[]").partition("%")[0])
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return str(mapped or address)


def ip_sort_key(text: str) -> tuple[int, int]:
    address = ipaddress.ip_address(text)
    return address.version, int(address)


def is_dns_name(name: str) -> bool:
    labels = name.split(".")
    return len(name) <= 253 and all(LABEL.match(label) for label in labels)
