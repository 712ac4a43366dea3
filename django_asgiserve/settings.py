"""The ``ASGISERVE`` setting: its defaults, its validation and the typed view the rest reads.

Validation returns every problem at once (the system checks show them all); ``load()`` raises the
first one for code paths that must not go on with a broken configuration. Whether the backend is
installed is asked separately (``backend_problems``), by the serving command only.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from django_asgiserve import backends, values
from django_asgiserve.asgi.proxy_headers import DEFAULT_ALLOW_IPS

DEFAULTS: dict[str, Any] = {
    "BACKEND": "auto",
    "OPTIONS": {},
    "RUNSERVER": True,
    "WATCH_PATHS": [],
    "WATCH_IGNORE": [],
    "GRACEFUL_TIMEOUT": None,
    "PROXY_HEADERS": False,
    "FORWARDED_ALLOW_IPS": list(DEFAULT_ALLOW_IPS),
    "LIFESPAN_SIGNALS": False,
    "TEST_BACKEND": "auto",
    "SYNC_FAST_PATH": True,
    "LOOP_WARN_MS": None,
    "REQUEST_COST": True,
    "WARM_UP": True,
    "ACCESS_LOG": True,
    "HEALTH_PATH": "",
    "DRAIN_DELAY": 0,
    "METRICS": "",
    "STARTUP_TIMEOUT": 60,
    "MAX_REQUESTS": 0,
    "MAX_REQUESTS_JITTER": 0,
    "MAX_WORKER_MEMORY": 0,
    "HTTPS": False,
    "PROCESS_MODEL": None,
}


@dataclass(frozen=True)
class Ruled:
    """A key a command option also sets: the rule both follow (:mod:`values`), the check id of
    a value that breaks it, and whether ``None`` (the default: decided by the mode) is allowed."""

    id: str
    rule: values.Rule[Any]
    hint: str | None = None
    nullable: bool = False


#: Every key of ``DEFAULTS`` that an option of ``asgiserve`` also sets (the option is the key in
#: lower case, ``--max-requests`` for ``MAX_REQUESTS``).
RULED: dict[str, Ruled] = {
    "BACKEND": Ruled(
        "asgiserve.E003", values.BACKEND, f"Choose one of: auto, {', '.join(backends.NAMES)}."
    ),
    "GRACEFUL_TIMEOUT": Ruled(
        "asgiserve.E010", values.GRACEFUL_TIMEOUT, "None: 1 with the reloader, 10 without.", True
    ),
    "FORWARDED_ALLOW_IPS": Ruled("asgiserve.E011", values.FORWARDED_ALLOW_IPS),
    "LOOP_WARN_MS": Ruled(
        "asgiserve.E013",
        values.LOOP_WARN_MS,
        "None: 100 with the reloader, off without.",
        True,
    ),
    "HEALTH_PATH": Ruled("asgiserve.E014", values.HEALTH_PATH),
    "DRAIN_DELAY": Ruled("asgiserve.E015", values.DRAIN_DELAY),
    "METRICS": Ruled(
        "asgiserve.E016",
        values.METRICS,
        'For example: "METRICS": "127.0.0.1:9100" (or "" for no metrics listener).',
    ),
    "STARTUP_TIMEOUT": Ruled("asgiserve.E018", values.STARTUP_TIMEOUT),
    "MAX_REQUESTS": Ruled("asgiserve.E019", values.MAX_REQUESTS),
    "MAX_REQUESTS_JITTER": Ruled("asgiserve.E020", values.MAX_REQUESTS_JITTER),
    "MAX_WORKER_MEMORY": Ruled("asgiserve.E021", values.MAX_WORKER_MEMORY),
    "PROCESS_MODEL": Ruled(
        "asgiserve.E022",
        values.PROCESS_MODEL,
        "None: spawn on macOS and where fork is missing, fork elsewhere.",
        True,
    ),
}
#: Keys that are True or False (``--proxy-headers``/``--no-proxy-headers`` and
#: ``--access-log``/``--no-access-log`` for two of them).
FLAGS = (
    "RUNSERVER",
    "PROXY_HEADERS",
    "LIFESPAN_SIGNALS",
    "SYNC_FAST_PATH",
    "REQUEST_COST",
    "WARM_UP",
    "ACCESS_LOG",
    "HTTPS",
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the configuration, in the shape of a Django system check message."""

    id: str
    msg: str
    hint: str | None = None


@dataclass(frozen=True)
class ServeSettings:
    """``settings.ASGISERVE`` merged over the defaults and validated."""

    backend: str = "auto"
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    watch_paths: tuple[str, ...] = ()
    watch_ignore: tuple[str, ...] = ()
    graceful_timeout: float | None = None
    proxy_headers: bool = False
    forwarded_allow_ips: tuple[str, ...] = DEFAULT_ALLOW_IPS
    lifespan_signals: bool = False
    #: The backend of the tests' live server (see :mod:`django_asgiserve.live.server`).
    test_backend: str = "auto"
    sync_fast_path: bool = True
    #: The event-loop watchdog's threshold (None: the default for the mode; see startup.py).
    loop_warn_ms: float | None = None
    request_cost: bool = True
    #: Whether a new worker builds what the workers it replaces had (see process.warm_up).
    warm_up: bool = True
    #: Whether each request is logged on ``django.server`` (see :mod:`asgi.access_log`).
    access_log: bool = True
    health_path: str = ""
    drain_delay: float = 0.0
    #: ``[addr:]port`` of the supervisor's Prometheus listener; empty: none.
    metrics: str = ""
    #: The command's options of the same names when it leaves them out (memory in MiB).
    startup_timeout: float = 60.0
    max_requests: int = 0
    max_requests_jitter: int = 0
    max_worker_memory: int = 0
    https: bool = False
    #: None: the platform's default (see :mod:`django_asgiserve.platforms`).
    process_model: str | None = None


def raw() -> dict[str, Any]:
    value = getattr(settings, "ASGISERVE", {})
    return value if isinstance(value, dict) else {}


def problems() -> list[Problem]:
    """Every problem with ``settings.ASGISERVE``, by check id; empty when it is usable."""
    value = getattr(settings, "ASGISERVE", {})
    if not isinstance(value, dict):
        return [
            Problem(
                "asgiserve.E001",
                f"ASGISERVE must be a dict, not {type(value).__name__}.",
                'For example: ASGISERVE = {"BACKEND": "uvicorn"}',
            )
        ]
    found: list[Problem] = []
    for key in value:
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
            found.append(
                Problem(
                    "asgiserve.E002",
                    f"ASGISERVE has an unknown key {key!r}.",
                    f"Did you mean {close[0]!r}?"
                    if close
                    else f"Valid keys: {', '.join(DEFAULTS)}.",
                )
            )
    merged = {**DEFAULTS, **value}
    found += _options_problems(merged["OPTIONS"])
    found += _test_backend_problems(merged["TEST_BACKEND"])
    for key in FLAGS:
        if not isinstance(merged[key], bool):
            found.append(Problem("asgiserve.E008", f"ASGISERVE[{key!r}] must be True or False."))
    not_lists = set()
    for key in ("WATCH_PATHS", "WATCH_IGNORE", "FORWARDED_ALLOW_IPS"):
        entries = merged[key]
        if not isinstance(entries, list | tuple) or not all(isinstance(e, str) for e in entries):
            not_lists.add(key)
            found.append(
                Problem("asgiserve.E009", f"ASGISERVE[{key!r}] must be a list of strings.")
            )
    for key, ruled in RULED.items():
        if key in not_lists or (merged[key] is None and ruled.nullable):
            continue
        if (text := ruled.rule.problem(merged[key])) is not None:
            found.append(Problem(ruled.id, f"ASGISERVE[{key!r}] {text}", ruled.hint))
    return sorted(found, key=lambda problem: problem.id)  # as Django lists them


def backend_problems(name: str) -> list[Problem]:
    """``asgiserve.E004`` when the backend ``name`` (or any, for ``auto``) is not installed.

    Only a command that serves asks this: a migration job or a worker image without the server
    must still run ``migrate`` and ``check`` with the project's settings.
    """
    if name != "auto" and name not in backends.NAMES:
        return []
    try:
        backends.get(name)
    except backends.BackendError as error:
        return [Problem("asgiserve.E004", str(error), error.hint)]
    return []


def _test_backend_problems(name: object) -> list[Problem]:
    """The live server serves in a thread of the test process: only some backends can."""
    why = backends.why_not_in_thread(name)
    if why is not None:
        return [
            Problem(
                "asgiserve.E012",
                f"ASGISERVE['TEST_BACKEND']: {why}.",
                f"Choose one of: auto, {', '.join(backends.in_thread_names())}.",
            )
        ]
    if name == "auto":
        return []
    try:
        backends.get(str(name))
    except backends.BackendError as error:
        return [Problem("asgiserve.E004", f"ASGISERVE['TEST_BACKEND']: {error}", error.hint)]
    return []


def _options_problems(options: object) -> list[Problem]:
    if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
        return [
            Problem(
                "asgiserve.E006",
                "ASGISERVE['OPTIONS'] must map backend names to dicts of options.",
                'For example: "OPTIONS": {"uvicorn": {"http": "h11"}}',
            )
        ]
    found = []
    for name, backend_options in options.items():
        if name not in backends.NAMES:
            found.append(
                Problem(
                    "asgiserve.E006",
                    f"ASGISERVE['OPTIONS'] has options for {name!r}, which is not a backend.",
                    f"Choose among: {', '.join(backends.NAMES)}.",
                )
            )
            continue
        backend_class = backends.backend_class(name)
        if not backend_class.is_installed():
            continue
        for error in backend_class.option_errors(backend_options):
            found.append(Problem("asgiserve.E007", f"ASGISERVE['OPTIONS'][{name!r}]: {error}"))
    return found


def load() -> ServeSettings:
    """The validated settings; raises ``ImproperlyConfigured`` on the first problem."""
    found = problems()
    if found:
        message = f"{found[0].msg} ({found[0].id})"
        hint = found[0].hint
        raise ImproperlyConfigured(f"{message}\nHINT: {hint}" if hint else message)
    merged = {**DEFAULTS, **raw()}
    timeout = merged["GRACEFUL_TIMEOUT"]
    return ServeSettings(
        backend=merged["BACKEND"],
        options=merged["OPTIONS"],
        watch_paths=tuple(merged["WATCH_PATHS"]),
        watch_ignore=tuple(merged["WATCH_IGNORE"]),
        graceful_timeout=None if timeout is None else float(timeout),
        proxy_headers=merged["PROXY_HEADERS"],
        forwarded_allow_ips=tuple(e.strip() for e in merged["FORWARDED_ALLOW_IPS"]),
        lifespan_signals=merged["LIFESPAN_SIGNALS"],
        test_backend=merged["TEST_BACKEND"],
        sync_fast_path=merged["SYNC_FAST_PATH"],
        loop_warn_ms=None if merged["LOOP_WARN_MS"] is None else float(merged["LOOP_WARN_MS"]),
        request_cost=merged["REQUEST_COST"],
        warm_up=merged["WARM_UP"],
        access_log=merged["ACCESS_LOG"],
        health_path=merged["HEALTH_PATH"],
        drain_delay=float(merged["DRAIN_DELAY"]),
        metrics=merged["METRICS"],
        startup_timeout=float(merged["STARTUP_TIMEOUT"]),
        max_requests=merged["MAX_REQUESTS"],
        max_requests_jitter=merged["MAX_REQUESTS_JITTER"],
        max_worker_memory=merged["MAX_WORKER_MEMORY"],
        https=merged["HTTPS"],
        process_model=merged["PROCESS_MODEL"],
    )
