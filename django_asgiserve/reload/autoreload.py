"""Django's reloader contract inside a worker: the ``sender`` of ``autoreload_started`` and
``file_changed``, and the worker's answer to "what does this change mean?"."""

from __future__ import annotations

import fnmatch
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from django.utils import autoreload

from django_asgiserve.reload import changes
from django_asgiserve.reload.changes import Classification
from django_asgiserve.reload.sources import module_files, project_roots, sources
from django_asgiserve.upstream import django as django_internals

if TYPE_CHECKING:
    from django_asgiserve.process.protocol import WatchEvent


class WorkerReloader:
    """The ``sender`` of Django's autoreload signals in a worker.

    Django's receivers only call ``watch_dir()`` and read ``extra_files``; this class provides
    those (as Django's ``BaseReloader`` does) and classifies changes the supervisor reports.
    """

    def __init__(
        self,
        *,
        broken: bool,
        cold: bool,
        learned: Callable[[], list[str]],
        before_judging: Callable[[], None] = lambda: None,
    ) -> None:
        self.extra_files: set[Path] = set()
        #: Run before Django's receivers see a change (they may empty this process's caches).
        self.before_judging = before_judging
        self.directory_globs: dict[Path, set[str]] = defaultdict(set)
        self.broken = broken
        self.cold = cold
        self.learned = learned

    def watch_dir(self, path: str | Path, glob: str) -> None:
        try:
            directory = Path(path).absolute()
        except FileNotFoundError:
            return
        self.directory_globs[directory].add(glob)

    def watch_request(self) -> WatchEvent:
        """What the supervisor should watch for this worker."""
        modules = self.module_files()
        roots = project_roots(modules)
        roots.update(self.directory_globs)
        roots.update(path.parent for path in self.extra_files)
        return {"event": "watch", "roots": sorted(str(r) for r in roots)}

    def module_files(self) -> set[Path]:
        """The real paths of every imported module and of files that failed to import."""
        return set(module_files()) | self.error_files()

    @staticmethod
    def error_files() -> set[Path]:
        return {Path(os.path.realpath(f)) for f in django_internals.error_files()}

    def watched_by_name(self, path: Path) -> bool:
        """Whether ``path`` is a file Django's receivers asked to watch (``extra_files``, or
        under a ``watch_dir()`` directory matching its glob: templates, translations)."""
        if path in self.extra_files:
            return True
        for directory, globs in list(self.directory_globs.items()):
            if path.is_relative_to(directory):
                relative = path.relative_to(directory).as_posix()
                if any(glob_matches(relative, glob) for glob in globs):
                    return True
        return False

    def is_watched(self, path: Path, modules: set[Path]) -> bool:
        """Whether Django's reloader would watch ``path``, given the imported ``modules``."""
        # The path itself too: a module replaced by a symlink to elsewhere (or by nothing
        # readable) has changed, whatever the link now points to.
        return (
            self.watched_by_name(path) or path in modules or Path(os.path.realpath(path)) in modules
        )

    def may_matter(self, raw: str, code_suffixes: tuple[str, ...], errors: set[Path]) -> bool:
        """Whether ``raw`` can be code or a watched file at all, decided from its name (and the
        name it links to): a data file the project writes in its tree (a cache, a log, an SQLite
        database and its journal) is nothing to do, found without walking ``sys.modules``."""
        path, real = Path(raw), Path(os.path.realpath(raw))
        return (
            path.name.endswith(code_suffixes)
            or real.name.endswith(code_suffixes)
            or self.watched_by_name(path)
            or real in errors
        )

    def classify(self, paths: list[str]) -> Classification:
        """``"none"``, ``"reload"`` or ``"cold"`` for a batch of changes, and the files that
        call for it; a reload, said on the console with the error, when judging them fails."""
        try:
            self.before_judging()
            return self.judge(paths)
        except Exception:
            return changes.fallback(paths)

    def judge(self, paths: list[str]) -> Classification:
        code_suffixes = sources.code_suffixes()
        errors = self.error_files()
        candidates = [raw for raw in paths if self.may_matter(raw, code_suffixes, errors)]
        if not candidates:
            return "none", []
        modules = self.module_files()  # once per batch: a checkout can change hundreds of files
        reasons = []
        for raw in candidates:
            path = Path(raw)
            # Broken code may not have imported the file that fixes it yet: any source counts.
            if self.broken and (path.suffix == ".py" or self.is_watched(path, modules)):
                reasons.append(raw)
                continue
            if self.broken or not self.is_watched(path, modules):
                continue
            results = autoreload.file_changed.send(sender=self, file_path=path)
            if not any(result for _receiver, result in results):
                reasons.append(raw)
        if not reasons:
            return "none", reasons
        return ("cold" if self.cold else "reload"), reasons


def glob_matches(relative: str, glob: str) -> bool:
    return fnmatch.fnmatch(relative, glob) or (
        glob.startswith("**/") and fnmatch.fnmatch(relative, glob[3:])
    )
