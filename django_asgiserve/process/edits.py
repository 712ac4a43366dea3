"""What the supervisor does about edits: it batches the watcher's changes, asks every serving
worker what they mean (Django's ``file_changed`` receivers answer in each), and reloads warm (a
new worker) or cold (a new preloader too) when one of them says so."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from django_asgiserve.insight.reload_timeline import ReloadTimeline
from django_asgiserve.process.children import Preloader, Worker
from django_asgiserve.reload import changes
from django_asgiserve.reload.changes import Classification
from django_asgiserve.reload.watcher import Watcher
from django_asgiserve.run_config import ServerConfig

#: Seconds a worker may take to answer whether a change needs a reload.
CLASSIFY_TIMEOUT = 5.0


class EditHandling:
    """The supervisor's reaction to edits; the state it uses is :class:`Supervisor`'s."""

    config: ServerConfig
    say: Callable[[str], None]
    watcher: Watcher
    initial_roots: set[Path]
    pending_changes: set[Path]
    changes_task: asyncio.Future[None] | None
    workers: set[Worker]
    stop_requested: asyncio.Event
    next_request_id: int

    def in_background(
        self, coroutine: Coroutine[Any, Any, Any] | asyncio.Future[Any]
    ) -> asyncio.Future[Any]:
        raise NotImplementedError

    async def current_preloader(self) -> Preloader | None:
        raise NotImplementedError

    async def reload(self, *, cold: bool, timeline: ReloadTimeline | None = None) -> None:
        raise NotImplementedError

    def serving(self) -> bool:
        raise NotImplementedError

    async def watch(self) -> None:
        self.watcher.add_roots(self.initial_roots)
        async for paths in self.watcher.changes():
            self.pending_changes |= paths
            if self.changes_task is None or self.changes_task.done():
                self.changes_task = self.in_background(self.handle_changes())

    async def handle_changes(self) -> None:
        while self.pending_changes and not self.stop_requested.is_set():
            changed, self.pending_changes = self.pending_changes, set()
            timeline = ReloadTimeline()
            action, reasons = await self.classify(changed)
            timeline.mark("classified")
            if action == "none":
                continue
            paths = [Path(p) for p in reasons] or sorted(changed)
            preloader = await self.current_preloader()
            stale = (
                preloader is None
                or preloader.broken
                or any(str(p.resolve()) in preloader.preloaded for p in paths)
            )
            names = ", ".join(str(p) for p in paths[:3])
            more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
            self.say(f"{names}{more} changed, reloading.")
            await self.reload(cold=stale or action == "cold", timeline=timeline)
            if self.serving():
                self.say(timeline.summary(self.config.verbosity))

    async def classify(self, paths: set[Path]) -> Classification:
        """Ask every serving worker what ``paths`` changing means (none, reload or cold), and
        which of them matter: each runs Django's receivers for its own caches, and the
        strongest answer counts. A worker that does not answer in time counts as a reload."""
        workers = [worker for worker in self.workers if not worker.closed.done()]
        if not workers:
            python_files = sorted(str(p) for p in paths if p.suffix == ".py")
            return ("reload" if python_files else "none"), python_files
        names = sorted(map(str, paths))
        asked = {worker: self.ask_to_classify(worker, names) for worker in workers}
        await asyncio.wait([reply for _id, reply in asked.values()], timeout=CLASSIFY_TIMEOUT)
        answers: list[Classification] = []
        for worker, (request_id, reply) in asked.items():
            if reply.done():
                answers.append(reply.result())
            else:
                worker.replies.pop(request_id, None)
                answers.append(("reload", names))
        return changes.merge(answers)

    def ask_to_classify(
        self, worker: Worker, paths: list[str]
    ) -> tuple[int, asyncio.Future[Classification]]:
        """Send ``worker`` a ``changed`` command; its request id and the future of its answer."""
        self.next_request_id += 1
        reply: asyncio.Future[Classification] = asyncio.get_running_loop().create_future()
        worker.replies[self.next_request_id] = reply
        worker.send({"cmd": "changed", "id": self.next_request_id, "paths": paths})
        return self.next_request_id, reply
