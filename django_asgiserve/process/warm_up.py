"""A new worker builds, before it says ``loaded``, what the workers it replaces had built lazily
for their requests, so that its first request costs what its second does.

Before a serving process judges an edit (Django's receivers may then empty its caches) it notes
in the run's *warm-up plan* (a small JSON file the supervisor made, ``ServerConfig.warm_plan``)
the templates its cached loaders hold. A new worker reads the plan after loading the project and,
with ``LANGUAGE_CODE`` active (its translation catalog loaded), builds the URL resolver's reverse
lookups and compiles those templates into its own cached loaders: what the page you were looking
at needs, and nothing for a page that renders none. A forked backend worker (gunicorn's) inherits
all of it. The first workers of a run have no plan: they build nothing ahead.

It never runs a view or a middleware (either may have side effects); what runs of the project's
code is what importing its template tag libraries and compiling its templates runs. A step that
fails is skipped: the request that needs it builds it as it would have, and shows any error.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.template.backends.django import DjangoTemplates

#: Templates compiled at most per engine: the plan keeps every template compiled since the
#: server started (a warmed worker's loaders hold them too), which a long session may make many.
MAX_TEMPLATES = 500
#: Never a name that ``reverse()`` could find: reversing it populates the lookups, then fails.
NO_SUCH_URL_NAME = "asgiserve: warm-up"

Plan = dict[str, list[str]]


def record(plan_path: str) -> None:
    """Add the templates this process's cached loaders hold to the plan (by engine alias)."""
    if not plan_path:
        return
    with contextlib.suppress(Exception):  # a plan is an optimisation: never in an edit's way
        plan = read(plan_path)
        for alias, names in cached_templates():
            plan[alias] = sorted(set(plan.get(alias, ())) | names)
        temporary = f"{plan_path}.{os.getpid()}"
        with open(temporary, "w") as file:
            json.dump(plan, file)
        os.replace(temporary, plan_path)


def read(plan_path: str) -> Plan:
    try:
        with open(plan_path) as file:
            plan: Plan = json.load(file)
    except (OSError, ValueError):
        return {}
    return plan if isinstance(plan, dict) else {}


def warm_up(plan_path: str, *, verbose: bool = False) -> None:
    """Build what the plan says the last workers had built; ``verbose``: say what failed."""
    from django.conf import settings
    from django.utils import translation

    plan = read(plan_path) if plan_path else {}
    if not plan:
        return
    with translation.override(settings.LANGUAGE_CODE):
        for step in (populate_urls, lambda: compile_templates(plan)):
            try:
                step()
            except Exception:
                if verbose:
                    sys.stderr.write("Warm-up: a step failed (the first request does it):\n")
                    traceback.print_exc()


def populate_urls() -> None:
    """``reverse()`` of a name no URLconf has builds every reverse lookup of the root URLconf
    for the active language (public API only), then fails as expected."""
    from django.conf import settings
    from django.urls import NoReverseMatch, reverse

    if getattr(settings, "ROOT_URLCONF", None):
        with contextlib.suppress(NoReverseMatch):
            reverse(NO_SUCH_URL_NAME)


def compile_templates(plan: Plan) -> None:
    """Each planned template, by the name it was asked for, into its engine's cached loader."""
    for alias, backend in caching_engines():
        for name in plan.get(alias, [])[:MAX_TEMPLATES]:
            with contextlib.suppress(Exception):  # its request shows the error, as without
                backend.engine.get_template(name)


def cached_templates() -> Iterator[tuple[str, set[str]]]:
    """Each caching Django engine's alias and the names of the templates its loaders hold."""
    from django.template.base import Template
    from django.template.loaders.cached import Loader

    for alias, backend in caching_engines():
        names: set[str] = set()
        for loader in backend.engine.template_loaders:
            if isinstance(loader, Loader):
                names.update(
                    template.origin.template_name
                    for template in list(loader.get_template_cache.values())
                    if isinstance(template, Template) and template.origin.template_name
                )
        yield alias, names


def caching_engines() -> Iterator[tuple[str, DjangoTemplates]]:
    """The Django template engines (alias, backend) whose loaders cache compiled templates."""
    from django.template import engines
    from django.template.backends.django import DjangoTemplates
    from django.template.loaders.cached import Loader

    for backend in engines.all():
        if isinstance(backend, DjangoTemplates) and any(
            isinstance(loader, Loader) for loader in backend.engine.template_loaders
        ):
            yield backend.name, backend
