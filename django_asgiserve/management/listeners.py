"""Where ``manage.py asgiserve`` listens: systemd's sockets, or the ones it binds (a socket per
worker where the kernel spreads connections over ``SO_REUSEPORT`` twins), the UDP twins of
HTTP/3, and the addresses the banner shows."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, replace

from django_asgiserve import addrport, backends, platforms
from django_asgiserve import sockets as listening
from django_asgiserve.run_config import ServerConfig


@dataclass
class Listeners:
    sockets: list[socket.socket]
    #: Where it serves, for the banner (the first, then "Also listening at" the others).
    addresses: list[addrport.Address]
    #: Whether worker ``k`` serves ``sockets[k]`` alone.
    socket_per_worker: bool


def listen(
    address: addrport.Address, config: ServerConfig, inherited: list[socket.socket]
) -> Listeners:
    """The sockets to serve ``config`` on: ``inherited`` from systemd, or bound at ``address``;
    ``listening.BindError`` (runserver's message) when one cannot be bound."""
    backend = backends.get(config.backend)
    # Servers accept greedily: on one shared socket a burst of connections all goes to one
    # worker. A socket per worker (SO_REUSEPORT twins that we keep open) lets the kernel
    # spread them, as granian's own command line does, and none is closed by a reload; where
    # the kernel does not spread them (macOS) or has no such option (Windows), one socket.
    socket_per_worker = (
        not backend.manages_workers
        and config.workers > 1
        and not inherited
        and platforms.balances_reuse_port()
    )
    if inherited:
        sockets = list(inherited)
        addresses = [addrport.Address.of(sock) for sock in sockets]
    else:
        sockets = [listening.bind(address, reuse_port=socket_per_worker)]
        if socket_per_worker:
            sockets = listening.bind_twins(sockets[0], config.workers)
        addresses = [replace(address, port=sockets[0].getsockname()[1])]
    if config.http3:
        try:
            sockets += [listening.bind_datagram(sock) for sock in sockets]
        except listening.BindError as error:
            raise listening.BindError(f"UDP for HTTP/3: {error}") from None
    return Listeners(sockets, addresses, socket_per_worker)


def public_hosts(sockets: list[socket.socket]) -> list[str]:
    """The addresses of ``sockets`` that other machines can reach (not loopback ones)."""
    hosts = []
    for sock in sockets:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            continue
        host = sock.getsockname()[0]
        address = ipaddress.ip_address(host.partition("%")[0])
        loopback = getattr(address, "ipv4_mapped", None) or address
        if not loopback.is_loopback and host not in hosts:
            hosts.append(host)
    return hosts
