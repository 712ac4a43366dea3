"""The process model of a run that did not ask for one where fork is the default: the fork model
until fork proves unsafe (the preloader finds threads the project's start-up left running, or a
forked worker dies before it has loaded, as a C library that cannot survive a fork makes it do
with SIGABRT), then the spawn model for the rest of the run, said in one line."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from django_asgiserve.supervisor.children import Worker
from django_asgiserve.supervisor.launches import Launcher


class SwitchingLauncher:
    """Forks, or spawns once told fork is unsafe (:meth:`fork_unsafe`); implements
    :class:`~django_asgiserve.supervisor.launches.Launcher`. ``fork`` makes the fork model,
    given what to call when fork proves unsafe."""

    def __init__(
        self,
        fork: Callable[[Callable[[str], None]], Launcher],
        spawn: Launcher,
        say: Callable[[str], None],
    ) -> None:
        self.fork = fork(self.fork_unsafe)
        self.spawn = spawn
        self.say = say
        self.spawning = False

    def fork_unsafe(self, reason: str) -> None:
        """From now on every worker is spawned."""
        if not self.spawning:
            self.spawning = True
            self.say(f"Spawning workers from now on: {reason}, so forking them is not safe.")

    def prepare(self, seats: int, generation: str) -> None:
        self.fork.prepare(seats, generation)
        self.spawn.prepare(seats, generation)

    async def start(
        self,
        seats: Sequence[int],
        generation: str,
        *,
        fresh: bool,
        changed: Collection[Path],
        started: Callable[[Worker], None],
    ) -> str:
        model = self.spawn if self.spawning else self.fork
        return await model.start(seats, generation, fresh=fresh, changed=changed, started=started)

    def warm_up(self) -> None:
        (self.spawn if self.spawning else self.fork).warm_up()

    # The fork model still owns the preloaders and workers it started before the switch.
    def installed(self, workers: Collection[Worker]) -> None:
        self.fork.installed(workers)
        if self.spawning:
            self.spawn.installed(workers)

    def discard(self, workers: Collection[Worker]) -> None:
        self.fork.discard(workers)

    def learn(self, modules: list[str]) -> None:
        if not self.spawning:
            self.fork.learn(modules)

    async def stop(self) -> None:
        await self.spawn.stop()
        await self.fork.stop()

    def kill(self) -> None:
        self.spawn.kill()
        self.fork.kill()

    def close(self) -> None:
        self.spawn.close()
        self.fork.close()
