"""Proxy headers: the client's address and scheme as a trusted reverse proxy reports them.

This module owns the whole feature, so it is the same on every backend (their own proxy-header
handling is always off): parsing and validating the trusted addresses (``--forwarded-allow-ips``,
``ASGISERVE["FORWARDED_ALLOW_IPS"]``) and the ASGI layer that, for a connection whose immediate
peer is trusted, takes the client from ``X-Forwarded-For`` and the scheme from
``X-Forwarded-Proto``. From any other peer the headers are ignored. The rules are uvicorn's: the
client is the rightmost address in ``X-Forwarded-For`` that is not itself trusted (each proxy
appends the address it saw), its port is unknown (0), and only ``http``/``https`` (``ws``/``wss``
for WebSockets) are taken as schemes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from django_asgiserve.asgi.types import ASGIApp, Receive, Scope, Send

#: Trusted when nothing else is said: a proxy on the same machine.
DEFAULT_ALLOW_IPS = ("127.0.0.1", "::1")
#: The entry that trusts every peer.
ANY = "*"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """The peers whose ``X-Forwarded-*`` headers are believed: addresses, networks or ``*``."""

    def __init__(self, entries: Iterable[str]) -> None:
        """Raises ``ValueError`` naming the first entry that is neither an address, a network
        nor ``*``."""
        self.entries = [entry.strip() for entry in entries]
        self.any = ANY in self.entries
        self.networks: list[Network] = []
        for entry in self.entries:
            if entry == ANY:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (such as 10.0.0.1, "
                    f"10.0.0.0/8 or fd00::/8), nor {ANY!r} (trust every peer)."
                ) from None

    @classmethod
    def from_option(cls, text: str) -> TrustedProxies:
        """From ``--forwarded-allow-ips``' comma-separated list; empty items are skipped."""
        return cls(item for item in text.split(",") if item.strip())

    def __contains__(self, host: object) -> bool:
        if self.any:
            return True
        if not isinstance(host, str):
            return False
        try:
            address = ipaddress.ip_address(host.strip())
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:10.0.0.1 is 10.0.0.1
        return any(address in net or (mapped and mapped in net) for net in self.networks)

    def client(self, forwarded_for: str) -> str | None:
        """The client address in an ``X-Forwarded-For`` value; ``None`` when it names none."""
        hosts = [host.strip() for host in forwarded_for.split(",") if host.strip()]
        if not hosts:
            return None
        if not self.any:
            for host in reversed(hosts):
                if host not in self:
                    return host
        # Every hop is trusted: the first one is the client as far as anyone can tell.
        return hosts[0]


def trust_proxy_headers(app: ASGIApp, trusted: TrustedProxies) -> ASGIApp:
    """Rewrite ``client`` and ``scheme`` from the proxy headers of trusted peers."""

    async def proxy_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = forwarded_scope(scope, trusted)
        await app(scope, receive, send)

    return proxy_app


def forwarded_scope(scope: Scope, trusted: TrustedProxies) -> Scope:
    """``scope``, or a copy of it with what a trusted peer's headers say."""
    peer = scope.get("client")
    if not peer or peer[0] not in trusted:
        return scope
    forwarded_for: list[str] = []
    proto: str | None = None
    for name, value in scope.get("headers", ()):
        name = name.lower()
        if name == b"x-forwarded-for":
            forwarded_for.append(value.decode("latin-1"))
        elif name == b"x-forwarded-proto":
            proto = value.decode("latin-1").strip().lower()
    changes: dict[str, Any] = {}
    if forwarded_for:
        client = trusted.client(",".join(forwarded_for))
        if client is not None:
            changes["client"] = (client, 0)
    if proto in ("http", "https", "ws", "wss"):
        if scope["type"] == "websocket":
            changes["scheme"] = proto.replace("http", "ws")
        else:
            changes["scheme"] = proto.replace("ws", "http")
    return {**scope, **changes} if changes else scope
