"""Failing fast without the reloader: no edit can bring a project back that never serves.

``--noreload`` start-up fails when no worker is ready within ``--startup-timeout`` seconds, and
serving stops when workers keep crashing with none serving: ``CRASHES_IN_A_ROW`` crashes in a row
(each one within the supervisor's crash memory of the previous one) after the back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Callable, Sequence
from typing import Any

from django_asgiserve.run_config import ServerConfig

#: Crashes in a row, with no worker serving, after which a ``--noreload`` server gives up.
CRASHES_IN_A_ROW = 5


def no_worker_ready(timeout: float) -> str:
    return (
        f"No worker became ready within {timeout:g} seconds (--startup-timeout): the project's "
        "start-up hangs (an import that waits for a service?)."
    )


def crash_loop(crashes: int) -> str:
    return (
        f"Workers crashed {crashes} times in a row with none serving: giving up (see the "
        "errors above)."
    )


async def first_ready(
    first_workers: asyncio.Future[Any],
    first: Sequence[tuple[int, socket.socket, int | None]],
    config: ServerConfig,
    on_ready: Callable[[asyncio.Future[Any]], object],
) -> str | None:
    """Wait for the first workers (``first``: the ones forked by the command, if any); past
    ``--startup-timeout`` (``--noreload`` only) the failure, with those workers killed and
    ``on_ready`` no longer called."""
    timeout = None if config.reload else config.startup_timeout or None
    done, _pending = await asyncio.wait([first_workers], timeout=timeout)
    if done:
        await first_workers
        return None
    first_workers.remove_done_callback(on_ready)
    # Ended by the shutdown; what it ends with (cancelled) is of no interest.
    first_workers.add_done_callback(lambda task: task.cancelled() or task.exception())
    for pid, _sock, _slot in first:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return no_worker_ready(config.startup_timeout)


def crash_loop_failure(config: ServerConfig, crashes: int, serving: bool) -> str | None:
    """Without the reloader, the failure once workers crash in a row with none serving."""
    if config.reload or crashes < CRASHES_IN_A_ROW or serving:
        return None
    return crash_loop(crashes)
