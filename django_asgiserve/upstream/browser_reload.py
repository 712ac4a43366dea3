"""What asgiserve relies on in django-browser-reload beyond its documented API, probed in the
command before it serves when the app is installed (and once in any other process that asks).

Relied on, why, since which django-browser-reload, and what happens without it:

``django_browser_reload.views.version_id``
    the id its event stream's pings carry, which a tab compares to reload: each worker sets it
    to its reload's generation, so every code reload reloads the tab and the workers of one
    reload agree (``asgi/tab_reload.py``). Since 1.0. Without: a tab reloads only when
    django-browser-reload's own id changes, on a cold restart (a warning).
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import sys
from collections.abc import Mapping

from django_asgiserve.upstream.probing import (
    Check,
    Findings,
    Reliance,
    Upstream,
    mentions,
    run_checks,
)

UPSTREAM = Upstream("django-browser-reload", "django-browser-reload", "1.12", "1.21")
VIEWS = "django_browser_reload.views"

VERSION_ID = Reliance(
    "django_browser_reload.views.version_id",
    since="1.0",
    why="an open tab reloads after every code reload: each worker makes it its generation",
    fallback="a tab reloads only when django-browser-reload's own id changes (a cold restart)",
)


def has_version_id() -> bool:
    from django_browser_reload import views

    events = inspect.unwrap(views.events)
    return isinstance(getattr(views, "version_id", None), str) and mentions(
        events.__code__, "version_id"
    )


def in_use() -> bool:
    """Whether the project uses django-browser-reload (its views are importable only then)."""
    from django.apps import apps

    return importlib.util.find_spec("django_browser_reload") is not None and apps.is_installed(
        "django_browser_reload"
    )


CHECKS: Mapping[Reliance, Check] = {VERSION_ID: has_version_id}


@functools.cache
def probe() -> Findings:
    """What holds of the above in the django-browser-reload installed (once per process);
    nothing to find when the project does not use it."""
    return run_checks(UPSTREAM, CHECKS if in_use() else {})


def set_version_id(generation: str) -> bool:
    """Make the id the tabs follow ``generation``, if the project's views are loaded; whether
    it did."""
    views = sys.modules.get(VIEWS)
    if views is None or not probe().holds(VERSION_ID):
        return False
    views.version_id = generation  # type: ignore[attr-defined]
    return True
