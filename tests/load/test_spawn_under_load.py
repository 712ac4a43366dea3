"""Spawned workers with every core busy: start, a view edit and Ctrl+C, tried a few times on one
backend with two workers. A spawned worker pays for a new interpreter and the project's import,
which busy cores slow down most: whatever it takes, no connection is refused once the server has
answered, the edit is served, and Ctrl+C ends every process and frees the port."""

from __future__ import annotations

import signal

import pytest

from tests.helpers.edits import ORIGINAL, set_message
from tests.helpers.hammer import Hammer, unused_port
from tests.helpers.polling import wait_for
from tests.helpers.server import wait_body
from tests.helpers.tries import end_of, exit_note, interrupt

pytestmark = pytest.mark.under_load

TRIES = 3
#: Seconds from Ctrl+C to the end of every process.
CTRL_C_BOUND = 10.0


@pytest.mark.parametrize("backend", ["uvicorn"])
def test_spawned_workers_start_reload_and_stop_under_load(start, project, backend, tries):
    views = project / "demo" / "views.py"
    for number in range(TRIES):
        port = unused_port()
        server = start(
            "--backend", backend, "--process-model", "spawn", "--workers", "2",
            addrport=f"127.0.0.1:{port}",
        )  # fmt: skip
        problems: list[str] = []
        with Hammer(port, "/sync/") as hammer:
            wait_for(lambda: hammer.first() is not None, what="a first answer")
            # Refused before anything listened, or waiting while the first workers loaded.
            refused_before = hammer.unanswered
            old, new = (
                (ORIGINAL, f"edit {number}")
                if number == 0
                else (f"edit {number - 1}", f"edit {number}")
            )
            set_message(views, old, new, atomic=True)
            server.wait_serving()
            wait_body(server, "/sync/", new)
            if hammer.unanswered != refused_before:
                problems.append(f"refused: {hammer.unanswered - refused_before} after serving")
            if bad := [a.status for a in hammer.answers if a.status != 200]:
                problems.append(f"status: {bad[:5]}")
            interrupt(server, signal.SIGINT, group=True)
        problems += end_of(server, port, CTRL_C_BOUND)
        tries.add(problems, server.output, (exit_note(server),), f"try {number}")
    tries.check()
