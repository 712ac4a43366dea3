"""Editing a project's files as editors do, and the demo's texts the edits change.

``write`` moves the modification time at least a second on, so that Python never runs stale
bytecode after two quick edits of the same size (its ``.pyc`` check uses whole seconds).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

#: ``MESSAGE`` in ``testproject/demo/views.py``: what ``/sync/`` and ``/async/`` answer.
ORIGINAL = "hello from testproject"
#: What the console says after a changed file's path when it reloads.
RELOADING = "changed, reloading."
#: Appended to a module, it no longer compiles.
SYNTAX_ERROR = "\ndef broken(:\n    pass\n"


def write(path: Path, text: str, *, atomic: bool = False) -> None:
    """Write ``text`` to ``path`` as an editor does: in place, or atomically (a temporary file
    renamed over it).

    The modification time always moves at least a second past the previous one: Python trusts
    a ``.pyc`` whose recorded mtime (in whole seconds) and size match the source, so two quick
    edits of the same size would otherwise run stale bytecode, whatever the server does.
    """
    try:
        previous = path.stat().st_mtime_ns
    except FileNotFoundError:
        previous = 0
    mtime = max(time.time_ns(), previous + 1_000_000_000)
    if atomic:
        temporary = path.with_name(f".{path.name}.asgiserve-test.tmp")
        temporary.write_text(text)
        os.utime(temporary, ns=(mtime, mtime))
        os.replace(temporary, path)
    else:
        path.write_text(text)
        os.utime(path, ns=(mtime, mtime))


def set_message(views: Path, old: str, new: str, *, atomic: bool = False) -> None:
    """Change ``MESSAGE`` in ``demo/views.py`` from ``old`` to ``new``."""
    source = views.read_text()
    assert f'MESSAGE = "{old}"' in source
    write(views, source.replace(f'MESSAGE = "{old}"', f'MESSAGE = "{new}"'), atomic=atomic)
