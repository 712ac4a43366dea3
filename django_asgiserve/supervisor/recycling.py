"""Worker recycling, the supervisor's side: whether a worker past ``--max-requests`` or
``--max-worker-memory`` is replaced, and the line that says why (measuring and counting happen in
the worker: :mod:`django_asgiserve.process.recycling`).

A worker is replaced the way a reload replaces one: its replacement loaded first, then it
retires. One that was already past the memory limit when it started cannot be helped by a new
one, which would be as big: the supervisor says so once and leaves such workers be.
"""

from __future__ import annotations

from collections.abc import Callable

from django_asgiserve.process.protocol import MemoryRecycleEvent, RecycleEvent
from django_asgiserve.run_config import ServerConfig
from django_asgiserve.supervisor.children import Worker


class Recycling:
    def __init__(self, config: ServerConfig, warn: Callable[[str], None]) -> None:
        self.config = config
        self.warn = warn
        #: Whether a worker too big to be helped by a new one has been reported.
        self.warned_too_big = False
        #: Requests that came during a reload: the reload replaces those workers, unless it
        #: fails.
        self.deferred: dict[Worker, RecycleEvent] = {}

    def defer(self, worker: Worker, request: RecycleEvent) -> None:
        self.deferred[worker] = request

    def take_deferred(self) -> list[tuple[Worker, RecycleEvent]]:
        taken, self.deferred = list(self.deferred.items()), {}
        return taken

    def why(self, worker_pid: int, request: RecycleEvent) -> str | None:
        """The line that says why the worker is replaced; ``None``: it is not."""
        limit_mb = self.config.max_worker_memory
        if request["reason"] == "max-memory":
            if started_too_big(request, limit_mb):
                if not self.warned_too_big:
                    self.warned_too_big = True
                    self.warn(too_big_warning(worker_pid, request, limit_mb))
                return None
            return replacing_line(worker_pid, request, limit_mb)
        limit = f"--max-requests {self.config.max_requests}"
        if self.config.max_requests_jitter:
            limit += f", --max-requests-jitter {self.config.max_requests_jitter}"
        return f"Worker {worker_pid} served {request['served']} requests ({limit}): replacing it."


def started_too_big(event: MemoryRecycleEvent, limit_mb: int) -> bool:
    """Whether the worker was past the limit as it started: a new one would be too."""
    return event["start_rss_mb"] >= limit_mb


def too_big_warning(worker_pid: int, event: MemoryRecycleEvent, limit_mb: int) -> str:
    return (
        f"Worker {worker_pid} used {event['start_rss_mb']} MB as it started, more than "
        f"--max-worker-memory {limit_mb}: a new worker would be as big, so workers are not "
        "replaced for their memory. Raise the limit above a worker's size."
    )


def replacing_line(worker_pid: int, event: MemoryRecycleEvent, limit_mb: int) -> str:
    where = "" if event["pid"] == worker_pid else f" in its process {event['pid']}"
    return (
        f"Worker {worker_pid} uses {event['rss_mb']} MB{where} (--max-worker-memory "
        f"{limit_mb}): replacing it."
    )
