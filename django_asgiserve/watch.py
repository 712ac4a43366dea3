"""What to watch, and the watchfiles loop that watches it (run by the supervisor).

The supervisor watches for the whole life of the server, so no edit falls between two workers;
workers tell it which roots and directories matter (Django's ``autoreload_started`` receivers
ask for those) and judge each change themselves. Directories are registered one by one, never
recursively, so nothing under ``.git``, virtualenvs, ``node_modules``, ``__pycache__``,
``MEDIA_ROOT`` or ``STATIC_ROOT`` is ever registered with the operating system.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
import site
import sys
import sysconfig
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import watchfiles

EXCLUDED_NAMES = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".tox",
        ".nox",
        ".venv",
        "venv",
        "env",
        ".direnv",
        "__pycache__",
        "node_modules",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".idea",
        ".vscode",
        "site-packages",
        "htmlcov",
    }
)
#: Editor droppings and compiled files: never a reason to reload.
IGNORED_FILE_PATTERNS = ("*.py[cod]", "*.sw?", "*~", ".#*", "#*#", "4913", "*.tmp")
MAX_DIRECTORIES = 10_000
#: Milliseconds without further events before a batch of changes is handed on.
SETTLE_MS = 20


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


def is_ignored(path: Path, ignore: Iterable[str]) -> bool:
    return any(
        fnmatch.fnmatch(path.name, pattern) or fnmatch.fnmatch(str(path), pattern)
        for pattern in ignore
    )


def watched_directories(
    roots: Iterable[Path], excluded: Iterable[Path], ignore: Iterable[str]
) -> list[Path]:
    """Every directory under ``roots`` worth a watch, skipping excluded trees."""
    excluded = {p.resolve() for p in excluded}
    ignore = tuple(ignore)
    found: list[Path] = []
    seen: set[Path] = set()
    stack = sorted({r for r in roots if r.is_dir()}, reverse=True)
    while stack and len(found) < MAX_DIRECTORIES:
        directory = stack.pop()
        if directory in seen or directory in excluded:
            continue
        seen.add(directory)
        found.append(directory)
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        if any(entry.name == "pyvenv.cfg" for entry in entries):
            found.pop()  # a virtualenv that happens to live in the project
            continue
        for entry in entries:
            if (
                entry.is_dir(follow_symlinks=False)
                and entry.name not in EXCLUDED_NAMES
                and not entry.name.endswith(".egg-info")
                and not is_ignored(Path(entry.path), ignore)
            ):
                stack.append(Path(entry.path))
    return found


class Watcher:
    """Batches of changed paths under a set of roots that grows while it runs.

    Each group of newly added directories gets a watch of its own, started before anything is
    handed on and never restarted, so no change falls between two watches.
    """

    def __init__(self, excluded: Iterable[Path], ignore: Iterable[str]) -> None:
        self.excluded = list(excluded)
        self.ignore = (*IGNORED_FILE_PATTERNS, *ignore)
        self.roots: set[Path] = set()
        self.directories: set[Path] = set()
        self.batches: asyncio.Queue[set[Path]] = asyncio.Queue()
        self.stop_event = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    def add_roots(self, roots: Iterable[Path]) -> None:
        new = {Path(r).resolve() for r in roots} - self.roots
        if new and not self.stop_event.is_set():
            self.roots |= new
            task = asyncio.ensure_future(self.watch(new))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def stop(self) -> None:
        """End every watch; their threads return within a few milliseconds."""
        self.stop_event.set()

    async def watch(self, roots: set[Path]) -> None:
        found = await asyncio.to_thread(watched_directories, roots, self.excluded, self.ignore)
        directories = [d for d in found if d not in self.directories]
        if not directories:
            return
        self.directories.update(directories)
        async for batch in watchfiles.awatch(
            *directories,
            watch_filter=None,
            recursive=False,
            step=SETTLE_MS,
            stop_event=self.stop_event,
            ignore_permission_denied=True,
        ):
            paths = {Path(raw) for _change, raw in batch}
            created = {p for p in paths if p not in self.directories and p.is_dir()}
            if created:
                self.add_roots(created)
            changed = {p for p in paths if not is_ignored(p, self.ignore) and p not in created}
            if changed:
                self.batches.put_nowait(changed)

    async def changes(self) -> AsyncIterator[set[Path]]:
        while not self.stop_event.is_set():
            batch = await self.batches.get()
            while not self.batches.empty():
                batch |= self.batches.get_nowait()
            yield batch
