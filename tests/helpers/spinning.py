"""Every core kept busy while a test runs, as a laptop's are while an editor, a browser and a
test run compete: one process per core spinning in a loop, at the tests' own priority.

``busy_cores()`` returns once each spinner spins and ends them all when its block ends, however
it ends. A spinner also ends by itself when the process that started it is gone (a killed test
run), so none is ever left spinning on a shared machine.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

#: ``argv[1]``: the pid of the test process; the loop ends when that is no longer its parent.
SPIN = """
import os, sys
parent = int(sys.argv[1])
print("spinning", flush=True)
while os.getppid() == parent:
    for _ in range(100_000):
        pass
"""


@contextlib.contextmanager
def busy_cores(count: int | None = None) -> Iterator[list[int]]:
    """``count`` spinning processes (one per core by default) for the block; their pids."""
    spinners: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count or os.cpu_count() or 2):
            spinners.append(
                subprocess.Popen(
                    [sys.executable, "-c", SPIN, str(os.getpid())],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                )
            )
        for spinner in spinners:
            assert spinner.stdout is not None
            # Blocks until it is in its loop (or gone: then the line is missing).
            started = spinner.stdout.readline()
            assert started == b"spinning\n", f"spinner {spinner.pid} did not start"
        yield [spinner.pid for spinner in spinners]
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            spinner.wait()
            if spinner.stdout is not None:
                spinner.stdout.close()
