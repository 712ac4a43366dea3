"""A project whose system check fails, served with ``--noreload`` as a deploy serves it: like
runserver, the command prints the check and exits 1, and never answers a request meanwhile (a
deploy that fails its checks must never have served traffic). A client knocks on the port from
the moment the process starts; each try is bounded, and past the bound it hung.

Each worker takes its time to load the project (as a real one's URLconf does), and the check
a random time to fail, so that the failure comes before the workers are ready, while they get
ready and after they serve.
"""

from __future__ import annotations

import random

import pytest

from tests.helpers.hammer import Hammer, unused_port
from tests.helpers.tiny_project import CHECK_ID, CHECK_MESSAGE, environ
from tests.helpers.tries import end_of, exit_note

pytestmark = pytest.mark.under_load

#: Tries per backend and worker count (so twice this per backend): a start-up that serves before
#: its checks fail did so in most tries of the first version, so three are enough to see it.
TRIES = 3
#: Seconds a try may take to exit; past them it hung.
BOUND = 20.0
#: Seconds a worker takes to load the project.
WORKER_LOAD = 1.0
#: The check fails after up to this many seconds: longer than the workers take to load.
CHECK_SECONDS = 1.5


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_check_exits_1_without_serving(start, tiny, backend, workers, tries):
    for number in range(TRIES):
        port = unused_port()
        # One try in each third of the check's range: before, while and after the workers load.
        seconds = CHECK_SECONDS * (number + random.random()) / TRIES
        server = start(
            "--noreload", "--backend", backend, "--workers", str(workers),
            cwd=tiny, addrport=f"127.0.0.1:{port}",
            env=environ(fail=True, check=seconds, worker_load=WORKER_LOAD),
        )  # fmt: skip
        with Hammer(port) as hammer:
            problems = end_of(server, port, BOUND)
        code = server.process.returncode
        if code != 1:
            problems.append(f"exit code: {code}, not 1")
        if CHECK_ID not in server.output or CHECK_MESSAGE not in server.output:
            problems.append(f"check not shown: {CHECK_ID} and its message are not in the output")
        if hammer.answers:
            statuses = sorted({answer.status for answer in hammer.answers})
            problems.append(f"answered: {len(hammer.answers)} requests (statuses {statuses})")
        context = f"the check took {seconds:.2f} s"
        tries.add(problems, server.output, (exit_note(server),), context)
    tries.check()
