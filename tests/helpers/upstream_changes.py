"""A release of Django, a server or a library that changed what asgiserve relies on, simulated in
every Python process a test starts (the command, its preloaders and workers).

A ``sitecustomize`` module, first on ``PYTHONPATH``, changes named modules as they are imported:

* ``renames``: text replaced in the module's source before it runs (and in the source
  ``inspect`` or a probe reads), as when a release renames an attribute everywhere it uses it;
* ``deletions``: attributes deleted once the module has run (``"Class.attribute"`` or a
  module attribute), for compiled modules too.

A replaced text that is not in the source fails the import, so a test cannot pass because the
upstream already changed in another way.
"""

from __future__ import annotations

import os
from pathlib import Path

CHANGING_FINDER = """
import importlib.abc
import importlib.machinery
import sys


def delete(module):
    for dotted in DELETIONS.get(module.__name__, ()):
        owner, _, name = dotted.rpartition(".")
        target = module
        for part in filter(None, owner.split(".")):
            target = getattr(target, part)
        delattr(target, name)


class RenamingLoader(importlib.machinery.SourceFileLoader):
    def get_source(self, fullname):
        source = super().get_source(fullname)
        for old, new in RENAMES.get(fullname, ()):
            if old not in source:
                raise ImportError(f"upstream change: {old!r} is not in {fullname}")
            source = source.replace(old, new)
        return source

    def get_code(self, fullname):
        return compile(self.get_source(fullname), self.path, "exec", dont_inherit=True)

    def exec_module(self, module):
        super().exec_module(module)
        delete(module)


class DeletingExtensionLoader(importlib.machinery.ExtensionFileLoader):
    def exec_module(self, module):
        super().exec_module(module)
        delete(module)


class ChangingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name not in RENAMES and name not in DELETIONS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is None:
            return None
        if isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            spec.loader = RenamingLoader(spec.loader.name, spec.loader.path)
        elif isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            spec.loader = DeletingExtensionLoader(spec.loader.name, spec.loader.path)
        return spec


sys.meta_path.insert(0, ChangingFinder())
"""

Renames = dict[str, list[tuple[str, str]]]


def changed_environ(
    directory: Path, renames: Renames | None = None, deletions: dict[str, list[str]] | None = None
) -> dict[str, str]:
    """Environment variables under which the modules are so changed (files go in
    ``directory``)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(
        f"RENAMES = {renames or {}!r}\nDELETIONS = {deletions or {}!r}\n{CHANGING_FINDER}"
    )
    path = [str(directory), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {"PYTHONPATH": os.pathsep.join(path)}
