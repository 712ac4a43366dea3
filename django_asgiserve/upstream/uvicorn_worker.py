"""What asgiserve relies on in uvicorn-worker (uvicorn's gunicorn worker) beyond its documented
API, probed in the command before it serves and once in each process that serves.

Relied on, why, since which uvicorn-worker, and what happens without it:

``UvicornWorker._serve`` (awaited by ``run()``), ``CONFIG_KWARGS``, ``config``
    each gunicorn worker serves with asgiserve's uvicorn server, which leaves Ctrl+C to the
    supervisor and stops in two steps, and with its settings (``backends/gunicorn_server.py``).
    Since 0.1. Without: asgiserve cannot serve with gunicorn (refused).
``UvicornWorker._install_sigquit_handler``
    SIGQUIT from the arbiter ends a worker at once, as under uvicorn's own worker. Since 0.1.
    Without: SIGQUIT's default action ends it (a note at verbosity 2).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import Any

from django_asgiserve.upstream.probing import (
    Check,
    Findings,
    Reliance,
    Upstream,
    mentions,
    run_checks,
)

UPSTREAM = Upstream("uvicorn-worker", "uvicorn-worker", lowest="0.4", newest="0.4.0")

SERVE = Reliance(
    "UvicornWorker._serve (awaited by run()), CONFIG_KWARGS and config",
    since="0.1",
    why="each gunicorn worker serves with asgiserve's uvicorn server, which leaves Ctrl+C to "
    "the supervisor and stops in two steps",
)
SIGQUIT = Reliance(
    "UvicornWorker._install_sigquit_handler",
    since="0.1",
    why="SIGQUIT from the arbiter ends a worker at once, as under uvicorn's own worker",
    fallback="SIGQUIT's default action ends it",
    loses=False,
)


def has_serve() -> bool:
    from uvicorn_worker import UvicornWorker

    return (
        inspect.iscoroutinefunction(UvicornWorker._serve)
        and mentions(UvicornWorker.run.__code__, "_serve")
        and isinstance(UvicornWorker.CONFIG_KWARGS, dict)
        and mentions(UvicornWorker.__init__.__code__, "config", "CONFIG_KWARGS")
    )


def has_sigquit_handler() -> bool:
    from uvicorn_worker import UvicornWorker

    return callable(getattr(UvicornWorker, "_install_sigquit_handler", None))


CHECKS: Mapping[Reliance, Check] = {SERVE: has_serve, SIGQUIT: has_sigquit_handler}


@functools.cache
def probe() -> Findings:
    """What holds of the above in the uvicorn-worker installed (once per process)."""
    return run_checks(UPSTREAM, CHECKS)


def install_sigquit_handler(worker: Any) -> None:
    if probe().holds(SIGQUIT):
        worker._install_sigquit_handler()
