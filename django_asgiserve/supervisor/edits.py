"""Edits: the watcher's batches of changed files, kept until they can be judged, judged by every
serving worker (Django's ``file_changed`` receivers answer in each), and what they call for.

While new code loads, edits wait for it: its workers judge them once they serve (a module only the
new code imports is news to the old workers). Edits made once a launch has loaded for longer than
``STALLED_AFTER`` are judged at once by the workers that serve (none: a Python file counts), and
when they call for a reload the stalled launch is given up for one with the newest code: a worker
whose import hangs is fixed by an edit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable
from pathlib import Path

from django_asgiserve.insight.reload_timeline import ReloadTimeline
from django_asgiserve.reload import changes
from django_asgiserve.reload.changes import Classification
from django_asgiserve.supervisor.children import Worker
from django_asgiserve.supervisor.clock import Clock, wait_for
from django_asgiserve.supervisor.events import EditsClassified

#: Seconds a worker may take to answer whether a change needs a reload.
CLASSIFY_TIMEOUT = 5.0
#: Seconds of loading after which a launch of new code counts as stalled (see above).
STALLED_AFTER = 5.0


class Edits:
    def __init__(self) -> None:
        self.pending: set[Path] = set()
        #: Whether a batch is being judged (one at a time).
        self.judging = False
        self.next_request_id = 0

    def add(self, paths: Iterable[Path]) -> None:
        self.pending.update(paths)

    def can_judge(self) -> bool:
        return bool(self.pending) and not self.judging

    def take(self) -> frozenset[Path]:
        """The pending batch, to judge now."""
        batch, self.pending = frozenset(self.pending), set()
        self.judging = True
        return batch

    def judged(self, batch: Collection[Path] = (), *, keep: bool = False) -> None:
        """Judging is over; ``keep``: ``batch`` was judged too early, judge it again later."""
        self.judging = False
        if keep:
            self.pending.update(batch)

    async def classify(
        self, batch: frozenset[Path], workers: Collection[Worker], clock: Clock
    ) -> EditsClassified:
        """Ask every serving worker what ``batch`` changing means (none, reload or cold), and
        which of its files matter: each runs Django's receivers for its own caches, and the
        strongest answer counts. One that does not answer in time counts as a reload."""
        timeline = ReloadTimeline()
        action, paths = await self.ask(batch, workers, clock)
        timeline.mark("classified")
        return EditsClassified(action, paths, batch, timeline)

    async def ask(
        self, batch: frozenset[Path], workers: Collection[Worker], clock: Clock
    ) -> Classification:
        alive = [worker for worker in workers if not worker.gone.done()]
        if not alive:
            python_files = sorted(str(p) for p in batch if p.suffix == ".py")
            return ("reload" if python_files else "none"), python_files
        names = sorted(map(str, batch))
        asked: dict[int, Worker] = {}
        replies = []
        for worker in alive:
            self.next_request_id += 1
            asked[self.next_request_id] = worker
            replies.append(worker.ask(self.next_request_id, names))
        every = asyncio.ensure_future(asyncio.wait(replies))
        await wait_for(clock, every, CLASSIFY_TIMEOUT)
        every.cancel()
        for request_id, worker in asked.items():
            worker.replies.pop(request_id, None)  # too late: its answer is no longer awaited
        answers: list[Classification] = [
            reply.result() if reply.done() else ("reload", names) for reply in replies
        ]
        return changes.merge(answers)


def reloading_line(paths: list[Path]) -> str:
    """What the console says: the first few files that call for the reload."""
    names = ", ".join(str(p) for p in paths[:3])
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    return f"{names}{more} changed, reloading."
