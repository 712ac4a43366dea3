"""The system checks a worker runs after a reload, once its first response is over.

The supervisor ran the checks before the first workers served; after an edit its own modules
are the old ones, so the new worker checks the new code. It prints what the checks find and
never blocks serving. It waits for its first HTTP response to be over (or :data:`AT_THE_LATEST`
seconds when no request comes): the request that follows an edit, a browser tab reloading, would
otherwise share the interpreter with the checks and take twice as long.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback

#: Seconds after serving began when the checks run although no response is over yet (nobody
#: requested anything, or the first request is a stream that lasts).
AT_THE_LATEST = 1.0


class ChecksAfterFirstResponse:
    """Runs the checks on a daemon thread once :meth:`first_response_over` is called, or at
    :data:`AT_THE_LATEST`; started before the backend serves."""

    def __init__(self) -> None:
        self._over = threading.Event()
        # A backend's forked worker answers the requests (gunicorn's): it must not touch this
        # process's event, whose lock another thread may have held at the fork.
        self._owner = os.getpid()

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True, name="asgiserve-checks").start()

    def first_response_over(self) -> None:
        if os.getpid() == self._owner:
            self._over.set()

    def _run(self) -> None:
        self._over.wait(AT_THE_LATEST)
        report_checks()


def report_checks() -> None:
    """Django's system checks, printed when they find something."""
    from django.core.management.base import BaseCommand, SystemCheckError

    try:
        BaseCommand().check(display_num_errors=False)
    except SystemCheckError as error:
        sys.stderr.write(f"{error}\n")
    except Exception:
        traceback.print_exc()
