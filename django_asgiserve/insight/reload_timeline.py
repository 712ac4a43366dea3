"""How long a reload took, and with ``-v 2`` where its time went."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class ReloadTimeline:
    """Monotonic timestamps of one reload, from the change being seen."""

    seen: float = field(default_factory=time.monotonic)
    marks: list[tuple[str, float]] = field(default_factory=list)

    def mark(self, what: str) -> None:
        self.marks.append((what, time.monotonic()))

    def summary(self, verbosity: int) -> str:
        total = (self.marks[-1][1] if self.marks else time.monotonic()) - self.seen
        if verbosity < 2:
            return f"Reloaded in {total * 1000:.0f} ms."
        steps = ", ".join(f"{what} +{(at - self.seen) * 1000:.0f} ms" for what, at in self.marks)
        return f"Reloaded in {total * 1000:.0f} ms: change seen +0 ms, {steps}."
