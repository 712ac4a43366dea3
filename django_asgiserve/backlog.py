"""A listening socket's backlog: how many connections wait in it, and keeping new ones out of it
while the workers accept those already there (Linux).

Shutting down or closing a listening socket resets every connection still in its backlog. The
kernel completed their handshakes, so their clients may have sent a request already (a
balancer's POST, which it must not resend). No socket option refuses new connections while
keeping the backlog, but a socket filter can ignore them: :func:`hold_new_connections` attaches
a classic BPF program that drops the SYN opening a connection and passes every other segment,
so handshakes already under way complete. A client whose SYN was dropped sends it again a
second later (the kernel's initial retransmission timeout) and is then refused, once the port
is shut, or served by whatever process binds the port next. Elsewhere both functions do
nothing, and the drain behaves as without them.
"""

from __future__ import annotations

import ctypes
import socket
import struct
import sys

#: ``<asm-generic/socket.h>``, the value on the architectures CPython builds for on Linux.
SO_ATTACH_FILTER = 26
#: ``TCP_LISTEN`` from ``<net/tcp_states.h>``: the first byte of a listener's ``tcp_info``.
TCP_LISTEN = 10
SYN, ACK = 0x02, 0x10
#: Classic BPF ``(code, jt, jf, k)``. A TCP socket's filter sees a segment from its TCP
#: header, whose byte 13 holds the flags: drop a SYN without ACK, keep everything else whole.
DROP_OPENING_SYNS = (
    (0x30, 0, 0, 13),  # ldb [13]
    (0x54, 0, 0, SYN | ACK),  # and #(SYN|ACK)
    (0x15, 0, 1, SYN),  # jeq #SYN, next, skip one
    (0x06, 0, 0, 0),  # ret #0: dropped
    (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1: kept
)


def on_linux(sock: socket.socket) -> bool:
    return sys.platform.startswith("linux") and sock.type == socket.SOCK_STREAM


def hold_new_connections(sock: socket.socket) -> bool:
    """From now on the kernel ignores new connections to ``sock`` (every process's copy: the
    filter belongs to the socket); whether it could be done."""
    if not on_linux(sock):
        return False
    code = b"".join(struct.pack("HBBI", *instruction) for instruction in DROP_OPENING_SYNS)
    program = ctypes.create_string_buffer(code, len(code))
    # struct sock_fprog: the instruction count, then a pointer to them (the kernel copies them).
    fprog = struct.pack("HP", len(DROP_OPENING_SYNS), ctypes.addressof(program))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


def queued(sock: socket.socket) -> int:
    """Connections in ``sock``'s backlog, waiting for an ``accept()``; 0 where it cannot tell."""
    if not sys.platform.startswith("linux") or not on_linux(sock):
        return 0
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
    except OSError:
        return 0
    if len(info) < 28 or info[0] != TCP_LISTEN:
        return 0
    # A listener's tcpi_unacked is the length of its accept queue.
    count: int = struct.unpack_from("I", info, 24)[0]
    return count
