"""Packages made "not installed" in every Python process a test starts.

A ``sitecustomize`` module, first on ``PYTHONPATH``, puts a ``PathFinder`` in front that does not
find the hidden top-level packages: ``importlib.util.find_spec`` answers ``None`` and ``import``
raises ``ModuleNotFoundError``, as for a distribution that is not installed, in the command and in
every interpreter it starts.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Hides the top-level packages in the set ``HIDDEN``, which the code it is put in defines.
HIDING_FINDER = """
import importlib.machinery
import sys


class HidingPathFinder(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            return None
        return super().find_spec(name, path, target)


sys.meta_path[sys.meta_path.index(importlib.machinery.PathFinder)] = HidingPathFinder
"""


def hiding_environ(directory: Path, *packages: str) -> dict[str, str]:
    """Environment variables under which ``packages`` cannot be found (files go in
    ``directory``)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(f"HIDDEN = {set(packages)!r}\n{HIDING_FINDER}")
    path = [str(directory), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"PYTHONPATH": os.pathsep.join(path)}
