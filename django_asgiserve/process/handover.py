"""What a spawned worker is handed at birth, both sides of it: its end of the channel, the
listening sockets it serves, and a lifeline (a pipe whose end of file means the supervisor has
gone, watched by a thread, so that a worker never outlives it, on any platform).

On POSIX they are inherited descriptors (``pass_fds``), numbered in the environment. On Windows a
socket cannot be inherited that way: once the child exists, the supervisor duplicates each
socket for it (``socket.share(pid)``) and writes them on the child's standard input, which is
then the lifeline; the child rebuilds them with ``socket.fromshare``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from django_asgiserve.process import interrupts

CHANNEL_FD_KEY = "ASGISERVE_CHANNEL_FD"
LIFELINE_FD_KEY = "ASGISERVE_LIFELINE_FD"


@dataclass(eq=False)
class Spawned:
    """The supervisor's side of a spawned child: its process, and the lifeline's end that
    keeps it alive (closing it ends the child)."""

    process: subprocess.Popen[bytes]
    lifeline: IO[bytes] | int

    def release(self) -> None:
        """Close our end of the lifeline."""
        try:
            if isinstance(self.lifeline, int):
                os.close(self.lifeline)
            else:
                self.lifeline.close()
        except OSError:
            pass


def spawn(
    arguments: Sequence[str],
    env: dict[str, str],
    channel: socket.socket,
    sockets: Sequence[socket.socket],
    other_fds: Sequence[int] = (),
) -> Spawned:
    """Start ``arguments`` handing it ``channel`` (its end), ``sockets`` and ``other_fds``."""
    with interrupts.deferred():  # a Ctrl+C now waits until the child ignores it
        if sys.platform == "win32":
            return spawn_sharing(arguments, env, channel, sockets)
        return spawn_inheriting(arguments, env, channel, other_fds)


def spawn_inheriting(
    arguments: Sequence[str], env: dict[str, str], channel: socket.socket, fds: Sequence[int]
) -> Spawned:
    """POSIX: the descriptors keep their numbers in the child (the sockets' are in its config)."""
    theirs, ours = os.pipe()
    environ = {**env, CHANNEL_FD_KEY: str(channel.fileno()), LIFELINE_FD_KEY: str(theirs)}
    try:
        process = subprocess.Popen(
            list(arguments), env=environ, pass_fds=[*fds, channel.fileno(), theirs]
        )
    except BaseException:
        os.close(ours)
        raise
    finally:
        os.close(theirs)
    return Spawned(process, ours)


def spawn_sharing(
    arguments: Sequence[str],
    env: dict[str, str],
    channel: socket.socket,
    sockets: Sequence[socket.socket],
) -> Spawned:
    """Windows: the sockets, duplicated for the child, written on its standard input."""
    process = subprocess.Popen(list(arguments), env=env, stdin=subprocess.PIPE)
    assert process.stdin is not None
    if sys.platform == "win32":  # for the type checker: share() exists on Windows only
        parcel = {
            "channel": channel.share(process.pid).hex(),
            "sockets": [sock.share(process.pid).hex() for sock in sockets],
        }
        process.stdin.write(json.dumps(parcel).encode() + b"\n")
        process.stdin.flush()
    return Spawned(process, process.stdin)


def receive() -> tuple[socket.socket, list[int] | None]:
    """In the child: its channel, and the sockets' descriptors when they changed numbers
    (``None``: as its configuration says); starts watching the lifeline."""
    if sys.platform == "win32":
        line = sys.stdin.buffer.readline()
        parcel = json.loads(line)
        channel = socket.fromshare(bytes.fromhex(parcel["channel"]))
        fds = [socket.fromshare(bytes.fromhex(s)).detach() for s in parcel["sockets"]]
        watch_lifeline(sys.stdin.buffer.fileno())
        return channel, fds
    channel = socket.socket(fileno=int(os.environ.pop(CHANNEL_FD_KEY)))
    watch_lifeline(int(os.environ.pop(LIFELINE_FD_KEY)))
    return channel, None


def watch_lifeline(fd: int) -> None:
    """End this process the moment the supervisor's end of the lifeline closes."""

    def watch() -> None:
        try:
            while os.read(fd, 1):
                pass
        except OSError:
            pass
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="asgiserve-lifeline").start()
