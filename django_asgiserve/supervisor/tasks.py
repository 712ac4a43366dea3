"""The supervisor's operations: tasks it owns that report back on its queue.

A long operation (starting workers and waiting until they load, a drain's delay, a classification,
a retirement, the stop) runs as a task started here. What it returns, an event or nothing, is
posted to the supervisor's queue; one that raises is posted as :class:`OperationFailed` and one
that is cancelled posts nothing, so no operation ever raises into the loop or changes the
supervisor's state behind its back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from django_asgiserve.supervisor.clock import Clock
from django_asgiserve.supervisor.events import Event, OperationFailed

Operation = Coroutine[Any, Any, Event | None]


class Tasks:
    """The running operations, and where their events go."""

    def __init__(self, post: Callable[[Event], None]) -> None:
        self.post = post
        self.running: set[asyncio.Task[Event | None]] = set()

    def start(self, operation: Operation, name: str) -> asyncio.Task[Event | None]:
        task = asyncio.ensure_future(operation)
        self.running.add(task)
        task.add_done_callback(lambda done: self.report(done, name))
        return task

    def after(self, clock: Clock, seconds: float, event: Event) -> asyncio.Task[Event | None]:
        """A timer: ``event`` once ``seconds`` have passed on ``clock``."""

        async def timer() -> Event:
            await clock.sleep(seconds)
            return event

        return self.start(timer(), type(event).__name__)

    def report(self, task: asyncio.Task[Event | None], name: str) -> None:
        self.running.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self.post(OperationFailed(name, error))
        elif (event := task.result()) is not None:
            self.post(event)

    def cancel_all(self, keep: asyncio.Task[Any] | None = None) -> None:
        for task in list(self.running):
            if task is not keep:
                task.cancel()
