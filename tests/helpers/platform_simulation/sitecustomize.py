"""The platform simulation: put this directory on ``PYTHONPATH`` with
``ASGISERVE_SIMULATE_PLATFORM=win32`` or ``darwin`` and every interpreter of a server (the
command, its workers) takes the paths django-asgiserve takes on that platform, on Linux.

What it hides is what the platform lacks: Windows has no ``os.fork``, no ``SO_REUSEPORT``, no
``SIGHUP`` and no parent-death signal; macOS has ``SO_REUSEPORT`` but does not spread
connections over the sockets (``platforms.balances_reuse_port``) and no parent-death signal.
``django_asgiserve.platforms.SYSTEM`` is set to the platform's name, which is where the package
decides everything else. What cannot be simulated (``socket.share``, Windows' consoles and
event loops) is left out and said so in the docs.
"""

from __future__ import annotations

import os
import signal
import socket

SIMULATED = os.environ.get("ASGISERVE_SIMULATE_PLATFORM", "")

if SIMULATED == "win32":
    for name in ("fork", "forkpty"):
        if hasattr(os, name):
            delattr(os, name)
    if hasattr(socket, "SO_REUSEPORT"):
        del socket.SO_REUSEPORT
    if hasattr(signal, "SIGHUP"):
        del signal.SIGHUP
if SIMULATED in ("win32", "darwin"):
    from django_asgiserve import platforms

    platforms.SYSTEM = SIMULATED
