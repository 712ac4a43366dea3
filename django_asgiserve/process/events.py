"""The supervisor's side of its children's messages: one reader per child, and each event
dispatched by table to a ``handle_*`` method for the child's kind (the messages: :mod:`protocol`).

A mixin of the supervisor, as :class:`~django_asgiserve.process.pool.Pool` is: the handlers
change the pool's state (a worker ready, a worker gone and replaced, one to recycle).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from pathlib import Path

from django_asgiserve.process import recycling
from django_asgiserve.process.children import Child, Preloader, Worker
from django_asgiserve.process.pool import Pool
from django_asgiserve.process.protocol import (
    BootedEvent,
    ClassifiedEvent,
    ForkedEvent,
    ImportedEvent,
    LearnedEvent,
    ReadyEvent,
    RecycleEvent,
    StoppingEvent,
    WatchEvent,
    decode,
)
from django_asgiserve.process.worker_tally import WorkerTally
from django_asgiserve.reload.watcher import Watcher


class ChildEvents(Pool):
    """Reads every child's messages and reacts to each event."""

    watcher: Watcher
    tally: WorkerTally
    readers: set[asyncio.Task[None]]

    def listen(self, child: Child) -> None:
        # Readers are not background tasks: shutdown needs them to see each child go.
        task = asyncio.ensure_future(self.read_messages(child))
        self.readers.add(task)
        task.add_done_callback(self.readers.discard)

    async def read_messages(self, child: Child) -> None:
        try:
            while line := await child.reader.readline():
                self.dispatch(child, decode(line))
        except (ConnectionError, ValueError):
            pass
        finally:
            child.closed.set_result(None)
            if isinstance(child, Worker):
                self.handle_worker_closed(child)

    def dispatch(self, child: Child, message: Mapping[str, object]) -> None:
        """Hand ``message`` to the ``handle_*`` method for its event and the child's kind."""
        table = self.PRELOADER_EVENTS if isinstance(child, Preloader) else self.WORKER_EVENTS
        handler = table.get(str(message.get("event")))
        if handler is not None:
            handler(self, child, message)

    def handle_booted(self, preloader: Preloader, message: BootedEvent) -> None:
        if preloader.booted and not preloader.booted.done():
            preloader.booted.set_result(message)

    def handle_answer(self, preloader: Preloader, message: ForkedEvent | ImportedEvent) -> None:
        if preloader.answer and not preloader.answer.done():
            preloader.answer.set_result(message)

    def handle_ready(self, worker: Worker, message: ReadyEvent) -> None:
        if worker.ready and not worker.ready.done():
            worker.ready.set_result(message)
            self.tally.started()

    def handle_watch(self, worker: Worker, message: WatchEvent) -> None:
        self.watcher.add_roots(Path(r) for r in message["roots"])

    def handle_learned(self, worker: Worker, message: LearnedEvent) -> None:
        self.learn(message["modules"])

    def handle_classified(self, worker: Worker, message: ClassifiedEvent) -> None:
        reply = worker.replies.pop(message["id"], None)
        if reply is not None and not reply.done():
            reply.set_result((message["action"], message["paths"]))
        self.learn(message.get("learned", []))

    def handle_stopping(self, worker: Worker, message: StoppingEvent) -> None:
        worker.stopping_seen.set()

    def handle_recycle(self, worker: Worker, message: RecycleEvent) -> None:
        self.tally.asked_to_recycle(worker)
        self.in_background(recycling.recycle(self, worker, message))

    def handle_worker_closed(self, worker: Worker) -> None:
        # Gone, it accepts no more: the end of a drain need not wait for its word.
        worker.stopping_seen.set()
        ready = worker.ready is not None and worker.ready.done()
        stopping = self.stop_requested.is_set()
        self.tally.exited(worker, ready=ready, stopping=worker.stopping, server_stopping=stopping)
        if worker.preloader is not None:
            worker.preloader.workers.discard(worker)
        for reply in worker.replies.values():
            if not reply.done():
                reply.set_result(("reload", []))
        if worker in self.workers and not worker.stopping and not self.stop_requested.is_set():
            self.workers.discard(worker)
            self.in_background(self.replace_crashed(worker))

    #: Event name -> handler, for each kind of child (the messages: :mod:`protocol`).
    PRELOADER_EVENTS: dict[str, Callable[..., None]] = {
        "booted": handle_booted,
        "forked": handle_answer,
        "imported": handle_answer,
    }
    WORKER_EVENTS: dict[str, Callable[..., None]] = {
        "ready": handle_ready,
        "watch": handle_watch,
        "learned": handle_learned,
        "classified": handle_classified,
        "stopping": handle_stopping,
        "recycle": handle_recycle,
    }
