"""JSON messages between the supervisor and its children, over a Unix socket pair.

One message per line. A child also learns from this channel that its supervisor has gone: the
read returns end-of-file the moment the supervisor's end is closed, whatever killed it.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

Message = dict[str, Any]


class Channel:
    """Blocking, thread-safe message passing on one end of a socket pair."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._reader = sock.makefile("rb")
        self._send_lock = threading.Lock()

    @classmethod
    def pair(cls) -> tuple[Channel, socket.socket]:
        """A channel for this process and the raw socket to hand to a child."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        return cls(ours), theirs

    def send(self, message: Message) -> bool:
        """Send ``message``; ``False`` if the other end is gone (its reader will notice too)."""
        data = json.dumps(message).encode() + b"\n"
        with self._send_lock:
            try:
                self.sock.sendall(data)
            except OSError:
                return False
        return True

    def receive(self) -> Message | None:
        """The next message, or ``None`` once the other end is closed (or reset)."""
        try:
            line = self._reader.readline()
        except OSError:
            return None
        if not line:
            return None
        message: Message = json.loads(line)
        return message

    def receive_with_fds(self, max_fds: int = 1) -> tuple[Message | None, list[int]]:
        """A message that may carry file descriptors.

        Only for a channel whose sender waits for an answer before it sends again, so that a
        read never takes part of the next message (and its descriptors) along.
        """
        try:
            head, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, max_fds)
            line = bytearray(head)
            while line and not line.endswith(b"\n"):
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                line += chunk
        except OSError:
            return None, []
        if not line.endswith(b"\n"):
            return None, fds
        return json.loads(line), fds

    def close(self) -> None:
        self._reader.close()
        self.sock.close()
