"""The supervisor's own counts for ``--metrics``: workers started, workers exited and why,
reloads. Kept whether or not metrics are served (a few integers), so the supervisor's
handlers need no condition.

A start is a worker told to serve; an exit is one of those whose channel closed: a ``crash`` when
the supervisor had not asked it to stop, else ``stop`` (the server is stopping), ``recycle`` (it
had asked to be replaced, ``--max-requests``) or ``reload`` (replaced by a reload's workers). So
``starts - exits`` are the workers alive, retiring ones included.
"""

from __future__ import annotations

from weakref import WeakSet

from django_asgiserve.insight.metrics_text import EXIT_REASONS, SupervisorFigures


class WorkerTally:
    def __init__(self) -> None:
        self.starts = 0
        self.reloads = 0
        self.exits = dict.fromkeys(EXIT_REASONS, 0)
        self.recycling: WeakSet[object] = WeakSet()

    def started(self) -> None:
        self.starts += 1

    def asked_to_recycle(self, worker: object) -> None:
        self.recycling.add(worker)

    def exited(
        self, worker: object, *, served: bool, stopping: bool, server_stopping: bool
    ) -> None:
        """``worker``'s channel closed; ``served``: it had been told to serve; ``stopping``: it
        had been told to stop."""
        if not served:
            return
        if not stopping:
            reason = "crash"
        elif server_stopping:
            reason = "stop"
        elif worker in self.recycling:
            reason = "recycle"
        else:
            reason = "reload"
        self.exits[reason] += 1

    def figures(self, workers: int) -> SupervisorFigures:
        return SupervisorFigures(
            workers=workers, starts=self.starts, exits=dict(self.exits), reloads=self.reloads
        )
