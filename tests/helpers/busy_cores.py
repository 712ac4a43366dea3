"""Both cores kept busy, as a laptop's are while an editor, a browser and a test run compete.

``busy_cores()`` starts one spinning process per core (``os.cpu_count()``, at least two) for
the duration of a ``with`` block and always ends them, whatever the block raised.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

SPIN = "while True:\n    pass\n"


@contextlib.contextmanager
def busy_cores(count: int | None = None) -> Iterator[list[int]]:
    """Spin ``count`` processes (default: one per core, at least two); yields their pids."""
    spinners = [
        subprocess.Popen([sys.executable, "-c", SPIN], stdin=subprocess.DEVNULL)
        for _ in range(count or max(2, os.cpu_count() or 2))
    ]
    try:
        yield [spinner.pid for spinner in spinners]
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait(10)
