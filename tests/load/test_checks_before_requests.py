"""runserver's order: nothing is answered until the system checks have passed. A project whose
check takes its time (a real project's do), a client knocking on the port from the moment the
process starts: no status at all comes back before the banner's line is printed.

The stamps are an ordering, not a race between threads: the client takes in the server's output
before stamping an answer (``tests.helpers.hammer``), so a banner printed before an answer is
always stamped before it.
"""

from __future__ import annotations

import time

import pytest

from tests.helpers.hammer import Hammer, unused_port
from tests.helpers.server import Server
from tests.helpers.tiny_project import environ

pytestmark = pytest.mark.under_load

#: Tries per backend and worker count: with the reloader, then with ``--noreload``, in turn.
TRIES = 2
#: What the check takes.
CHECK_SECONDS = 2.0
#: The banner's line (the one that says it serves).
BANNER = "Starting ASGI/"
#: Seconds for the banner and an answer after it.
BOUND = 30.0
NOT_SERVING = f"not serving: no banner, then an answer, within {BOUND:g} s"


def serves_after_the_banner(server: Server, hammer: Hammer) -> bool:
    """Wait (bounded) for the banner and an answer after it; whether they came."""
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline and server.process.poll() is None:
        banner = server.stdout.stamp_of(BANNER)
        if banner is not None and any(answer.stamp > banner for answer in hammer.answers):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("workers", [1, 2])
def test_nothing_is_answered_before_the_checks_pass(start, tiny, backend, workers, tries):
    for number in range(TRIES):
        mode = ["--noreload"] if number % 2 else []
        port = unused_port()
        server = start(
            *mode, "--backend", backend, "--workers", str(workers),
            cwd=tiny, addrport=f"127.0.0.1:{port}", env=environ(check=CHECK_SECONDS),
        )  # fmt: skip
        with Hammer(port, settle=server.stdout.catch_up) as hammer:
            problems = [] if serves_after_the_banner(server, hammer) else [NOT_SERVING]
            banner = server.stdout.stamp_of(BANNER)
            early = [a for a in hammer.answers if banner is None or a.stamp < banner]
        if early and banner is not None:
            first = min(early, key=lambda answer: answer.stamp)
            problems.append(
                f"answered before the banner: {len(early)} requests, the first "
                f"({first.status}) {banner - first.stamp:.2f} s before it"
            )
        elif early:
            problems.append(f"answered without a banner: {len(early)} requests")
        server.kill()
        server.stdout.join()
        server.stderr.join()
        tries.add(problems, server.output, (), "with the reloader" if not mode else "--noreload")
    tries.check()
