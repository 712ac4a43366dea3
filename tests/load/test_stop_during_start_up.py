"""Stopping while the server starts: Ctrl+C (SIGINT to the process group, as a terminal sends
it) in development, SIGTERM (to the supervisor, as a process manager sends it) with
``--noreload``, at a random moment of each phase of start-up in turn (from the process's start,
from the system checks, from the banner, from the first answer). Whatever the moment, the server
exits within its bound, leaves no process of its session behind, and its port can be bound again
at once (a developer's next ``asgiserve`` must not find it taken).

A client knocks on the port from the start, so that some signals land during the first requests.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.hammer import Hammer, unused_port
from tests.helpers.server import Server
from tests.helpers.tiny_project import environ
from tests.helpers.tries import Tries, end_of, exit_note, interrupt

pytestmark = pytest.mark.under_load

#: Tries per backend, signal and worker count: one worker count takes the first phases, the
#: other the next ones, so each backend meets its signal in every phase of start-up.
TRIES = 2
#: Seconds from the signal to the end of every process.
CTRL_C_BOUND = 10.0
SIGTERM_BOUND = 20.0
#: Each phase: the line that starts it (none: the start of the process; "answer": the first
#: answer) and the most seconds after it the signal may come.
PHASES = {
    "starting": (None, 0.8),
    "checking": ("Performing system checks", 0.3),
    "banner": ("Quit the server with", 0.8),
    "first requests": ("answer", 0.1),
}
#: Seconds a worker takes to load the project: a signal may come while it does.
WORKER_LOAD = 0.5
#: How long a phase may take to begin.
PHASE_DEADLINE = 30.0


def reached(phase: str, server: Server, hammer: Hammer) -> bool:
    """Whether start-up has reached ``phase`` (the process may also have ended: then no)."""
    line, _most = PHASES[phase]
    if line is None:
        return True
    if line == "answer":
        return hammer.first() is not None
    return line in server.stdout.text


def signal_during(
    phase: str, server: Server, hammer: Hammer, signum: int, group: bool, bound: float
) -> tuple[list[str], str]:
    """Send ``signum`` at a random moment of ``phase``: the problems with how the server ended,
    and where start-up was when the signal came."""
    deadline = time.monotonic() + PHASE_DEADLINE
    while not reached(phase, server, hammer):
        if server.process.poll() is not None:
            return [f"exited before the signal: {exit_note(server)}, before {phase}"], "none"
        if time.monotonic() > deadline:
            server.kill()
            return [f"stuck: {phase} not reached within {PHASE_DEADLINE:g} s"], "none"
        time.sleep(0.01)
    time.sleep(random.uniform(0, PHASES[phase][1]))  # the moment, not a synchronisation
    if server.process.poll() is not None:
        return [f"exited before the signal: {exit_note(server)}, during {phase}"], "none"
    seen = moment(server, hammer)
    interrupt(server, signum, group)
    return end_of(server, hammer.port, bound), seen


def moment(server: Server, hammer: Hammer) -> str:
    """Where start-up was when the signal came, as the test saw it."""
    if hammer.answers:
        return "after the first answer"
    if "Quit the server with" in server.stdout.text:
        return "after the banner"
    return "before the banner"


def stop_tries(
    start: Callable[..., Server], tiny: Path, backend: str, workers: int, tries: Tries, how: str
) -> None:
    """The tries of one test: ``how`` is ``ctrl-c`` or ``sigterm``."""
    ctrl_c = how == "ctrl-c"
    for number in range(TRIES):
        phase = list(PHASES)[(number + (workers - 1) * TRIES) % len(PHASES)]
        port = unused_port()
        server = start(
            *([] if ctrl_c else ["--noreload"]), "--backend", backend, "--workers", str(workers),
            cwd=tiny, addrport=f"127.0.0.1:{port}", env=environ(worker_load=WORKER_LOAD),
        )  # fmt: skip
        with Hammer(port) as hammer:
            problems, seen = signal_during(
                phase,
                server,
                hammer,
                signal.SIGINT if ctrl_c else signal.SIGTERM,
                group=ctrl_c,
                bound=CTRL_C_BOUND if ctrl_c else SIGTERM_BOUND,
            )
        notes = (f"signal {seen}", exit_note(server))
        tries.add(problems, server.output, notes, f"signal during {phase}")
    tries.check()


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_during_start_up_ends_everything(start, tiny, backend, workers, tries):
    stop_tries(start, tiny, backend, workers, tries, "ctrl-c")


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_right_after_start_ends_everything(start, tiny, backend, workers, tries):
    stop_tries(start, tiny, backend, workers, tries, "sigterm")
