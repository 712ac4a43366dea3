"""Where the running code comes from: the source files of imported modules, the project's roots
among ``sys.path`` and the directories of the interpreter's and installed packages' code.

A worker asks which files its modules come from from several threads at once: the thread that
answers the supervisor's "what does this change mean?", the one that tells it what to watch at
start-up, the timer that reports the libraries it went on to import, while request threads import
more modules. :class:`ModuleSources` is the one table they all read, behind one lock.
"""

from __future__ import annotations

import importlib.machinery
import os
import site
import sys
import sysconfig
import threading
from collections.abc import Iterable
from pathlib import Path


def library_paths() -> list[Path]:
    """Directories that hold the interpreter's and installed packages' code."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages()}
    paths.update(sysconfig.get_paths().get(key, "") for key in ("stdlib", "purelib", "platlib"))
    return [Path(p).resolve() for p in paths if p]


def project_roots(module_files: Iterable[Path], extra: Iterable[str] = ()) -> set[Path]:
    """The ``sys.path`` entries outside the libraries that imported code came from."""
    libraries = library_paths()
    candidates = set()
    for entry in sys.path:
        path = Path(entry or os.getcwd()).resolve()
        if path.is_dir() and not any(path.is_relative_to(lib) for lib in libraries):
            candidates.add(f"{path}{os.sep}")
    roots = {Path(p).resolve() for p in extra}
    files = [str(f) for f in module_files]
    for candidate in candidates:
        if any(f.startswith(candidate) for f in files):
            roots.add(Path(candidate))
    return roots


class ModuleSources:
    """Module name -> real path of its source, filled as modules appear (resolving every path
    again on each change would cost tens of milliseconds on the reload's critical path), and the
    file name suffixes those sources have.

    Every read and update holds the lock, so no thread iterates the table while another adds to
    it. ``sys.modules`` is read through ``dict.copy()``, which runs no Python code: iterating it
    (even in ``list(sys.modules.items())``, whose item tuples can set off the garbage collector,
    and so finalizers and a thread switch) fails when another thread imports meanwhile.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: dict[str, Path | None] = {}
        self._files: set[Path] = set()
        self._suffixes: set[str] = set(importlib.machinery.all_suffixes())
        if sys.platform != "win32":
            os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        # A thread that held the lock was not copied into the child: the lock would stay taken
        # for ever, and the table may be half updated. Start the child with a free lock, and an
        # empty table if it was taken (it fills again on the next call).
        if self._lock.locked():
            self._paths, self._files = {}, set()
        self._lock = threading.Lock()

    def _refresh(self) -> None:
        """Add the modules imported since the last call (the lock is held)."""
        for name, module in sys.modules.copy().items():
            if name in self._paths:
                continue
            spec = getattr(module, "__spec__", None)
            origin: str | None = getattr(spec, "origin", None) if spec is not None else None
            located = origin is not None and getattr(spec, "has_location", False)
            path = Path(os.path.realpath(origin)) if located and origin else None
            self._paths[name] = path
            if path is not None:
                self._files.add(path)
                self._suffixes.add(path.suffix)

    def files(self) -> frozenset[Path]:
        """Real paths of the source files of every imported module."""
        with self._lock:
            self._refresh()
            return frozenset(self._files)

    def paths_of(self, names: Iterable[str]) -> dict[str, Path]:
        """The source paths of the modules ``names`` (those imported that have one)."""
        with self._lock:
            self._refresh()
            return {name: path for name in names if (path := self._paths.get(name)) is not None}

    def code_suffixes(self) -> tuple[str, ...]:
        """The endings of a file name that may be a module's source, known without looking at
        ``sys.modules``: those an importer loads (``importlib.machinery.all_suffixes()``) and
        those of every module's source seen so far."""
        with self._lock:
            return tuple(self._suffixes)


#: The worker's one table (a forked worker inherits its preloader's, already filled).
sources = ModuleSources()


def module_files() -> frozenset[Path]:
    """Real paths of the source files of every imported module (cheaper than Django's)."""
    return sources.files()


def learned_modules(inherited: frozenset[str], worker_only: tuple[str, ...]) -> list[str]:
    """Modules of installed packages this worker imported that its preloader had not."""
    libraries = tuple(f"{path}{os.sep}" for path in library_paths())
    ours = ("django_asgiserve", "__main__", *worker_only)
    names = [
        name for name in sys.modules.copy() if name not in inherited and not name.startswith(ours)
    ]
    return sorted(
        name for name, path in sources.paths_of(names).items() if str(path).startswith(libraries)
    )
