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
from collections.abc import AsyncIterator, Coroutine, Iterable
from pathlib import Path
from typing import Any

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
#: Milliseconds without further events before a batch of changes is handed on (watchfiles'
#: ``step``: a batch goes one to two steps after its first event). 5 ms took about 25 ms off
#: every edit, but a save made of two writes (content, then the modification time) was then
#: often seen as two edits: with both cores busy, a request was dropped in 4 of 5 runs of the
#: spawn model's reload test, against 0 of 5 at 20 ms.
SETTLE_MS = 20


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
            if entry.is_dir(follow_symlinks=False) and not skipped(Path(entry.path), ignore):
                stack.append(Path(entry.path))
    return found


def skipped(directory: Path, ignore: Iterable[str]) -> bool:
    """Whether a directory met while walking (or created while watching) is never watched."""
    name = directory.name
    return name in EXCLUDED_NAMES or name.endswith(".egg-info") or is_ignored(directory, ignore)


def files_in(directories: Iterable[Path]) -> set[Path]:
    """The files directly inside ``directories`` (those that still exist)."""
    files: set[Path] = set()
    for directory in directories:
        try:
            files.update(Path(e.path) for e in os.scandir(directory) if not e.is_dir())
        except OSError:
            continue
    return files


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

    def add_roots(self, roots: Iterable[Path], *, appeared: bool = False) -> None:
        """Watch ``roots`` and every directory below; ``appeared``: they were just created, so
        the files already in them are reported as changed."""
        new = {Path(r).resolve() for r in roots} - self.roots
        if new and not self.stop_event.is_set():
            self.roots |= new
            self.spawn(self.watch(new, appeared=appeared))

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def stop(self) -> None:
        """End every watch; their threads return within a few milliseconds."""
        self.stop_event.set()

    async def watch(self, roots: set[Path], *, appeared: bool = False) -> None:
        found = await asyncio.to_thread(watched_directories, roots, self.excluded, self.ignore)
        directories = [d for d in found if d not in self.directories]
        if not directories:
            return
        self.directories.update(directories)
        if appeared:
            # This task runs once awatch below has registered its watches (which it does
            # before its first await), so no file falls between the listing and the watch.
            self.spawn(self.report_files(directories))
        try:
            async for batch in watchfiles.awatch(
                *directories,
                watch_filter=None,
                recursive=False,
                step=SETTLE_MS,
                stop_event=self.stop_event,
                ignore_permission_denied=True,
            ):
                self.handle(batch)
        except FileNotFoundError:
            # One of them was removed before its watch began: watch the others.
            self.directories.difference_update(directories)
            remaining = {d for d in directories if d.is_dir()}
            if remaining:
                self.spawn(self.watch(remaining, appeared=appeared))

    def handle(self, batch: set[tuple[watchfiles.Change, str]]) -> None:
        paths = {Path(raw) for _change, raw in batch}
        added = {Path(raw) for change, raw in batch if change == watchfiles.Change.added}
        # A directory made again where one was deleted needs a new watch as much as a new one.
        created = {
            p
            for p in paths
            if (p not in self.directories or p in added)
            and p.is_dir()
            and not p.is_symlink()
            and not skipped(p, self.ignore)
        }
        if created:
            self.roots -= created
            self.directories = {
                d for d in self.directories if not any(d.is_relative_to(c) for c in created)
            }
            self.add_roots(created, appeared=True)
        changed = {p for p in paths if not is_ignored(p, self.ignore) and p not in created}
        if changed:
            self.batches.put_nowait(changed)

    async def report_files(self, directories: list[Path]) -> None:
        files = await asyncio.to_thread(files_in, directories)
        changed = {p for p in files if not is_ignored(p, self.ignore)}
        if changed:
            self.batches.put_nowait(changed)

    async def changes(self) -> AsyncIterator[set[Path]]:
        while not self.stop_event.is_set():
            batch = await self.batches.get()
            while not self.batches.empty():
                batch |= self.batches.get_nowait()
            yield batch
