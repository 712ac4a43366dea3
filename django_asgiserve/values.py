"""What each value of ``asgiserve``'s options and of the ``ASGISERVE`` setting may be: one rule
per value, which the command's parser (as the option's ``type``) and the settings' validation
(:mod:`django_asgiserve.settings`) both apply, so that an option and the setting for it accept
the same values and refuse the same ones in the same words.

An option's text becomes the value a setting would hold (``3``, ``2.5``, ``'/healthz'``) before
its rule judges it, so ``--max-requests -1`` and ``"MAX_REQUESTS": -1`` are refused alike:
``must be a whole number of requests (0: no limit), not -1.``
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from django_asgiserve.addrport import ADDRPORT_RE
from django_asgiserve.asgi.proxy_headers import TrustedProxies
from django_asgiserve.backends import NAMES
from django_asgiserve.platforms import PROCESS_MODELS

T = TypeVar("T")


def number(text: str) -> int | float | str:
    """``text`` as the number Python reads in it (``3``, ``2.5``, ``1e3``, ``inf``), else as is."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def comma_list(text: str) -> list[str]:
    """A comma-separated list (empty items skipped), as a setting's list would hold it."""
    return [item.strip() for item in text.split(",") if item.strip()]


@dataclass(frozen=True)
class Rule(Generic[T]):
    """What one value may be: ``what`` says it (in messages and in the README), ``check`` tells
    whether a value is one, and ``from_text`` reads an option's text as a setting's value."""

    what: str
    check: Callable[[object], bool]
    from_text: Callable[[str], object] = str

    def problem(self, value: object) -> str | None:
        """``must be …, not …`` when ``value`` breaks the rule, else None."""
        return None if self.check(value) else f"must be {self.what}, not {value!r}."

    def parse(self, text: str) -> T:
        """The option's value; ``argparse``'s error (the same words) when it breaks the rule."""
        value = self.from_text(text)
        problem = self.problem(value)
        if problem is not None:
            raise argparse.ArgumentTypeError(problem)
        return value  # type: ignore[return-value]  # the check said it is a T


class ProxiesRule(Rule[list[str]]):
    """``FORWARDED_ALLOW_IPS``: the message names the entry that is wrong."""

    def problem(self, value: object) -> str | None:
        if not isinstance(value, list | tuple) or not all(isinstance(e, str) for e in value):
            return f"must be {self.what}, not {value!r}."
        try:
            TrustedProxies(value)
        except ValueError as error:
            return f"must be {self.what}: {error}"
        return None


def is_whole(least: int) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= least

    return check


def is_amount(value: object) -> bool:
    """A finite number, 0 or more (not a bool)."""
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def is_path_or_empty(value: object) -> bool:
    return isinstance(value, str) and (value == "" or value.startswith("/"))


def is_addrport_or_empty(value: object) -> bool:
    if value == "":
        return True
    match = ADDRPORT_RE.match(value) if isinstance(value, str) else None
    return match is not None and int(match["port"]) <= 65535


BACKEND: Rule[str] = Rule(f"auto or one of {', '.join(NAMES)}", lambda v: v in ("auto", *NAMES))
WORKERS: Rule[int] = Rule("a whole number of processes (1 or more)", is_whole(1), number)
GRACEFUL_TIMEOUT: Rule[float] = Rule("a number of seconds (0 or more)", is_amount, number)
DRAIN_DELAY: Rule[float] = Rule("a number of seconds (0: none)", is_amount, number)
STARTUP_TIMEOUT: Rule[float] = Rule("a number of seconds (0: no bound)", is_amount, number)
LOOP_WARN_MS: Rule[float] = Rule("a number of milliseconds (0: off)", is_amount, number)
MAX_REQUESTS: Rule[int] = Rule("a whole number of requests (0: no limit)", is_whole(0), number)
MAX_REQUESTS_JITTER: Rule[int] = Rule("a whole number of requests (0: none)", is_whole(0), number)
MAX_WORKER_MEMORY: Rule[int] = Rule("a whole number of MiB (0: no limit)", is_whole(0), number)
HEALTH_PATH: Rule[str] = Rule("a path starting with '/' ('' for none)", is_path_or_empty)
METRICS: Rule[str] = Rule(
    "a port or an address and port, as [addr:]port ('' for none)", is_addrport_or_empty
)
FORWARDED_ALLOW_IPS = ProxiesRule(
    "IP addresses or networks of trusted proxies, or '*'", lambda v: True, comma_list
)
PROCESS_MODEL: Rule[str] = Rule(
    f"one of {', '.join(PROCESS_MODELS)}", lambda v: v in PROCESS_MODELS, number
)
