"""Network namespaces as simulated hosts: create them, wire them to a bridge, enter them.

A :class:`Network` is a set of namespaces made with iproute2 (``ip netns add``): a hub ``lb``
holding a bridge, and hosts joined to it by veth pairs, all in one private /24. Only the
namespaces it creates are touched; :meth:`Network.close` deletes them (and with them their
links and addresses). :func:`entered` moves the calling thread, not the process, into a
namespace, so sockets a test opens there reach the hosts' addresses.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

#: CLONE_NEWNET from <sched.h>: setns() into a network namespace.
CLONE_NEWNET = 0x40000000


class NetnsUnavailable(RuntimeError):
    """Namespaces cannot be made here (not root, no iproute2, a kernel or sandbox refusal)."""


def ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def enter(namespace: str) -> None:
    """Move the calling thread into ``namespace`` for good (a worker thread's initializer)."""
    fd = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        _setns(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def entered(namespace: str) -> Iterator[None]:
    """Run the block's network calls from ``namespace``; sockets opened there stay in it."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        enter(namespace)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


def delete_stale(prefix: str) -> None:
    """Delete namespaces ``<prefix><pid>-*`` whose process has died (a run killed before its
    teardown): only ever ones made here, named after the pid of the run that made them."""
    with contextlib.suppress(OSError):
        for entry in Path("/run/netns").iterdir():
            owner = entry.name.removeprefix(prefix).partition("-")[0]
            if (
                entry.name.startswith(prefix)
                and owner.isdigit()
                and not Path(f"/proc/{owner}").exists()
            ):
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    ip("netns", "delete", entry.name)


class Network:
    """Namespaces ``<prefix>-lb`` (a bridge at ``.1``) and ``<prefix>-<host>`` (``.11``, ...)."""

    def __init__(self, prefix: str, subnet: str = "10.203.0") -> None:
        self.prefix = prefix
        self.subnet = subnet
        self.lb = f"{prefix}-lb"
        self.lb_address = f"{subnet}.1"
        self.hosts: dict[str, str] = {}  # host name -> address
        self._namespaces: list[str] = []

    def namespace(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def _add(self, namespace: str) -> None:
        ip("netns", "add", namespace)
        self._namespaces.append(namespace)
        ip("-n", namespace, "link", "set", "lo", "up")

    def create_hub(self) -> None:
        """The ``lb`` namespace and its bridge; NetnsUnavailable if namespaces are refused."""
        if os.geteuid() != 0:
            raise NetnsUnavailable("network namespaces need root")
        if shutil.which("ip") is None:
            raise NetnsUnavailable(
                "iproute2's ip is not installed (Debian: apt-get install iproute2)"
            )
        try:
            self._add(self.lb)
        except RuntimeError as error:
            raise NetnsUnavailable(str(error)) from error
        ip("-n", self.lb, "link", "add", "br0", "type", "bridge")
        ip("-n", self.lb, "addr", "add", f"{self.lb_address}/24", "dev", "br0")
        ip("-n", self.lb, "link", "set", "br0", "up")

    def add_host(self, host: str) -> str:
        """A namespace for ``host`` joined to the bridge; returns its address."""
        namespace = self.namespace(host)
        address = f"{self.subnet}.{11 + len(self.hosts)}"
        self._add(namespace)
        # Made in the hub namespace, so no link ever exists outside the namespaces made here.
        hub_end = f"v{host}"
        ip("-n", self.lb, "link", "add", hub_end, "type", "veth", "peer", "name", "eth0",
           "netns", namespace)  # fmt: skip
        ip("-n", self.lb, "link", "set", hub_end, "master", "br0")
        ip("-n", self.lb, "link", "set", hub_end, "up")
        ip("-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
        ip("-n", namespace, "link", "set", "eth0", "up")
        self.hosts[host] = address
        return address

    def command(self, host_or_lb: str, *argv: str) -> list[str]:
        """``argv`` run inside a namespace (``ip netns exec`` execs it: the pid stays the same)."""
        namespace = self.lb if host_or_lb == "lb" else self.namespace(host_or_lb)
        return ["ip", "netns", "exec", namespace, *argv]

    def close(self) -> None:
        for namespace in reversed(self._namespaces):
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                ip("netns", "delete", namespace)
        self._namespaces.clear()
