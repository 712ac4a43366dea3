"""Where the running code comes from: the source files of imported modules, the project's roots
among ``sys.path`` and the directories of the interpreter's and installed packages' code."""

from __future__ import annotations

import os
import site
import sys
import sysconfig
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


#: Module name -> real path of its source; filled as modules appear, since resolving every
#: path again on each change would cost tens of milliseconds on the reload's critical path.
_module_paths: dict[str, Path | None] = {}


def module_files() -> set[Path]:
    """Real paths of the source files of every imported module (cheaper than Django's)."""
    for name, module in list(sys.modules.items()):
        if name not in _module_paths:
            spec = getattr(module, "__spec__", None)
            origin: str | None = getattr(spec, "origin", None) if spec is not None else None
            located = origin is not None and getattr(spec, "has_location", False)
            _module_paths[name] = Path(os.path.realpath(origin)) if located and origin else None
    return {path for path in _module_paths.values() if path is not None}


def learned_modules(inherited: frozenset[str], worker_only: tuple[str, ...]) -> list[str]:
    """Modules of installed packages this worker imported that its preloader had not."""
    libraries = tuple(f"{path}{os.sep}" for path in library_paths())
    module_files()
    return sorted(
        name
        for name in list(sys.modules)
        if name not in inherited
        and not name.startswith(("django_asgiserve", "__main__", *worker_only))
        and (path := _module_paths.get(name)) is not None
        and str(path).startswith(libraries)
    )
