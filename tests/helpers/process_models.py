"""The process-model axis of the end-to-end tests, and the platform simulation.

``PROCESS_MODELS``: the command-line arguments of each process model a test's server can run
(fork is the default on Linux: no option). ``WORKER_MODELS`` adds spawn with two workers, for
the tests of what ``--workers`` users rely on. ``simulated`` is the environment that makes every
interpreter of a server take the paths of Windows or macOS (see
``platform_simulation/sitecustomize.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

SPAWN = ("--process-model", "spawn")
PROCESS_MODELS: dict[str, tuple[str, ...]] = {"fork": (), "spawn": SPAWN}
WORKER_MODELS: dict[str, tuple[str, ...]] = {
    **PROCESS_MODELS,
    "spawn-2-workers": (*SPAWN, "--workers", "2"),
}
SIMULATION = Path(__file__).resolve().parent / "platform_simulation"


def simulated(platform: str) -> dict[str, str]:
    """The environment of a server that takes ``platform``'s paths (``win32``, ``darwin``)."""
    path = os.pathsep.join(filter(None, [str(SIMULATION), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "ASGISERVE_SIMULATE_PLATFORM": platform}
