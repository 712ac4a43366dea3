"""Workers that exit unexpectedly: the back-off before a replacement, and failing fast without the
reloader, where no edit can bring a project back that never serves.

A worker that dies right after it loaded (its code exits, it runs out of memory) must not be
restarted in a tight loop: the waits grow (0.1 s, 0.2 s, 0.4 s... up to ``MAX_BACKOFF``) and only
start from zero again once no worker has crashed for ``MEMORY_SECONDS``. ``--noreload`` gives up
after ``CRASHES_IN_A_ROW`` crashes in a row with none serving, and when no worker has loaded
within ``--startup-timeout`` seconds of the start.
"""

from __future__ import annotations

from dataclasses import dataclass

from django_asgiserve.supervisor.clock import Clock

#: Crashes in a row, with no worker serving, after which a ``--noreload`` server gives up.
CRASHES_IN_A_ROW = 5
MAX_BACKOFF = 5.0
#: A worker crash this many seconds after the previous one starts the back-off again from zero.
MEMORY_SECONDS = 30.0


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


@dataclass(frozen=True)
class Verdict:
    """What to do about a crash: wait ``delay`` seconds and replace it, or give up."""

    delay: float
    failure: str | None = None


class Crashes:
    def __init__(self, clock: Clock, *, reload: bool) -> None:
        self.clock = clock
        self.reload = reload
        self.count = 0
        self.last = -float("inf")
        #: Seats waiting out a back-off.
        self.waiting: set[int] = set()

    def crashed(self, *, serving: bool) -> Verdict:
        """A worker exited unexpectedly; ``serving``: others still serve the project."""
        now = self.clock.now()
        if now - self.last > MEMORY_SECONDS:
            self.count = 0
        self.last = now
        self.count += 1
        if not self.reload and self.count >= CRASHES_IN_A_ROW and not serving:
            return Verdict(0.0, crash_loop(self.count))
        return Verdict(min(MAX_BACKOFF, 0.1 * 2 ** (self.count - 1)))

    def back_off(self, seat: int) -> bool:
        """Whether ``seat`` starts a back-off now (one already waiting is enough)."""
        if seat in self.waiting:
            return False
        self.waiting.add(seat)
        return True

    def backed_off(self, seat: int) -> None:
        self.waiting.discard(seat)
