"""What asgiserve relies on in gunicorn beyond its documented API, probed in the command before it
serves and once in each process that serves.

Relied on, why, since which gunicorn, and what happens without it:

``Arbiter.SIGNALS``, ``LISTENERS``, ``WORKERS``, ``WORKER_BOOT_ERROR``, ``signal()``
    the arbiter runs inside asgiserve's worker: it leaves Ctrl+C, SIGTERM and SIGHUP to
    asgiserve's processes (its ``SIGNALS`` without them), closes its copies of the sockets
    itself, is stopped as its own SIGTERM handler stops it, and its workers are asked about
    changed files (``backends/gunicorn_server.py``). Since 19. Without: asgiserve cannot serve
    with gunicorn (refused).
``Config.settings[name].value``
    the grace period is passed in fractions of a second (gunicorn's setting takes whole
    ones). Since 19. Without: the grace
    period is rounded up to whole seconds (a note at verbosity 2).
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
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

UPSTREAM = Upstream("gunicorn", "gunicorn", lowest="23", newest="27.0.1")

ARBITER = Reliance(
    "Arbiter.SIGNALS, LISTENERS, WORKERS, WORKER_BOOT_ERROR and signal()",
    since="19",
    why="gunicorn's arbiter runs in asgiserve's worker and leaves Ctrl+C and SIGTERM to it",
)
SETTINGS = Reliance(
    "Config.settings[name].value",
    since="19",
    why="the grace period is passed in fractions of a second (the setting takes whole ones)",
    fallback="the grace period is rounded up to whole seconds",
    loses=False,
)


def has_arbiter_hooks() -> bool:
    from gunicorn.arbiter import Arbiter

    return (
        all(isinstance(s, signal.Signals | int) for s in Arbiter.SIGNALS)
        and isinstance(Arbiter.LISTENERS, list)
        and isinstance(Arbiter.WORKERS, dict)
        and isinstance(Arbiter.WORKER_BOOT_ERROR, int)
        and mentions(Arbiter.init_signals.__code__, "SIGNALS")
        and callable(Arbiter.signal)
    )


def has_settings() -> bool:
    from gunicorn.config import Config

    setting = Config().settings["graceful_timeout"]
    return hasattr(setting, "value")


CHECKS: Mapping[Reliance, Check] = {ARBITER: has_arbiter_hooks, SETTINGS: has_settings}


@functools.cache
def probe() -> Findings:
    """What holds of the above in the gunicorn installed (once per process)."""
    return run_checks(UPSTREAM, CHECKS)


def set_if_known(cfg: Any, name: str, value: object) -> None:
    """Set ``name`` where this gunicorn has it (``control_socket_disable``: 25.1 and later)."""
    with contextlib.suppress(AttributeError):  # gunicorn's answer to a setting it lacks
        cfg.set(name, value)


def set_seconds(cfg: Any, name: str, seconds: float) -> None:
    """Set a setting of whole seconds to ``seconds``, in fractions where gunicorn allows it."""
    if probe().holds(SETTINGS):
        cfg.settings[name].value = seconds
    else:
        cfg.set(name, math.ceil(seconds))
