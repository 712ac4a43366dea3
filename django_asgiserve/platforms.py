"""What the platform offers the process models, decided in this one place: whether it can fork,
whether the kernel spreads connections over ``SO_REUSEPORT`` twins, whether there is a hangup
signal, a parent-death signal, and which process model runs when none is asked for.

Everything else asks here rather than reading ``sys.platform`` or probing ``os``/``socket``
itself, so that the tests' platform simulation (which hides what Windows or macOS lack and sets
:data:`SYSTEM`) sends real server processes down the paths those platforms take.
"""

from __future__ import annotations

import os
import socket
import sys

#: The platform as the process models see it: ``sys.platform`` (a simulation may set it).
SYSTEM: str = sys.platform

FORK = "fork"
SPAWN = "spawn"
#: The process models, in the order messages list them.
PROCESS_MODELS = (FORK, SPAWN)


def is_windows() -> bool:
    return SYSTEM == "win32"


def can_fork() -> bool:
    """Whether ``os.fork`` exists here (Windows has none)."""
    return hasattr(os, "fork") and not is_windows()


def balances_reuse_port() -> bool:
    """Whether the kernel spreads new connections over sockets bound to one port with
    ``SO_REUSEPORT`` (Linux does; macOS hands them all to one, Windows has no such option)."""
    return SYSTEM.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def has_hangup() -> bool:
    """Whether SIGHUP exists (not on Windows)."""
    import signal

    return hasattr(signal, "SIGHUP") and not is_windows()


def has_parent_death_signal() -> bool:
    """Whether the kernel can end a child when its parent dies (Linux's ``PR_SET_PDEATHSIG``)."""
    return SYSTEM.startswith("linux")


def kill(pid: int) -> None:
    """End process ``pid`` at once: SIGKILL, or on Windows ``TerminateProcess`` (which is what
    ``os.kill`` does there with any signal); nothing if it has gone already."""
    import signal

    try:
        if sys.platform == "win32":
            os.kill(pid, signal.SIGTERM)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def default_process_model() -> str:
    """Spawn where fork is missing or unsafe by default (macOS: forking a process that touched
    Apple's frameworks can crash the child, which is why CPython's multiprocessing spawns
    there), fork elsewhere."""
    if not can_fork() or SYSTEM == "darwin":
        return SPAWN
    return FORK
