"""A new worker builds, before it says ``loaded``, what the workers it replaces had built lazily
for their requests, so that its first request costs what its second does.

Before a serving process judges an edit (Django's receivers may then empty its caches) it notes
in the run's *warm-up plan* (JSON in an anonymous file the supervisor made, which every process
of the run inherits: ``ServerConfig.warm_plan_fd``)
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
import re
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from django_asgiserve import platforms

if TYPE_CHECKING:
    from django.template.backends.django import DjangoTemplates
    from django.urls.resolvers import URLResolver

#: Templates compiled at most per engine: the plan keeps every template compiled since the
#: server started (a warmed worker's loaders hold them too), which a long session may make many.
MAX_TEMPLATES = 500
#: Never a name that ``reverse()`` could find: reversing it populates the lookups, then fails.
NO_SUCH_URL_NAME = "asgiserve: warm-up"

#: The plan's key for the URL patterns' regular expressions (no template engine is named so).
PATTERNS = "(url patterns)"

#: Template names by engine alias, and the URL patterns' regular expressions.
Plan = dict[str, list[str]]


def create_plan() -> int:
    """A new, empty plan: an anonymous file (in the supervisor, before anything forks), which
    ends with the last process that holds it, however they end. None on Windows (-1), where a
    spawned worker inherits no descriptor but its sockets: no warm-up there."""
    if sys.platform == "win32" or platforms.is_windows():
        return -1
    if sys.platform == "linux":
        return os.memfd_create("asgiserve-warm-up")
    fd, path = tempfile.mkstemp(prefix="asgiserve-warm-up-")  # macOS: unnamed once unlinked
    os.unlink(path)
    return fd


def record(plan_fd: int) -> None:
    """Add the templates this process's cached loaders hold to the plan (by engine alias)."""
    merge(plan_fd, dict(cached_templates()))


def merge(plan_fd: int, additions: Mapping[str, set[str]]) -> None:
    if sys.platform == "win32":  # no plan there (see create_plan)
        return
    import fcntl

    if plan_fd < 0:
        return
    with contextlib.suppress(Exception):  # a plan is an optimisation: never in an edit's way
        fcntl.lockf(plan_fd, fcntl.LOCK_EX)  # per process: serving processes merge in turn
        try:
            plan = read(plan_fd)
            for key, names in additions.items():
                plan[key] = sorted(set(plan.get(key, ())) | names)
            data = json.dumps(plan).encode()
            os.pwrite(plan_fd, data, 0)
            os.ftruncate(plan_fd, len(data))
        finally:
            fcntl.lockf(plan_fd, fcntl.LOCK_UN)


def read(plan_fd: int) -> Plan:
    """The plan (empty while there is none, or unreadable)."""
    if sys.platform == "win32":
        return {}
    try:
        data = os.pread(plan_fd, os.fstat(plan_fd).st_size, 0)
        plan: Plan = json.loads(data) if data else {}
    except (OSError, ValueError):
        return {}
    return plan if isinstance(plan, dict) else {}


def warm_up(plan_fd: int, *, verbose: bool = False) -> None:
    """Build what the plan says the last workers had built; ``verbose``: say what failed."""
    from django.conf import settings
    from django.utils import translation

    plan = read(plan_fd) if plan_fd >= 0 else {}
    if not plan:
        return
    with translation.override(settings.LANGUAGE_CODE):
        steps: tuple[Callable[[], None], ...] = (
            lambda: populate_urls(plan_fd),
            lambda: compile_templates(plan),
        )
        for step in steps:
            try:
                step()
            except Exception:
                if verbose:
                    sys.stderr.write("Warm-up: a step failed (the first request does it):\n")
                    traceback.print_exc()


def populate_urls(plan_fd: int = -1) -> None:
    """``reverse()`` of a name no URLconf has builds every reverse lookup of the root URLconf
    for the active language (public API only), then fails as expected. Nearly all of that is
    compiling each pattern's regular expression: they go into the plan, for the preloader to
    compile ahead (:func:`precompile_patterns`), so that the next worker inherits them."""
    from django.conf import settings
    from django.urls import NoReverseMatch, get_resolver, reverse

    if getattr(settings, "ROOT_URLCONF", None):
        with contextlib.suppress(NoReverseMatch):
            reverse(NO_SUCH_URL_NAME)
        merge(plan_fd, {PATTERNS: set(url_regexes(get_resolver()))})


def url_regexes(resolver: URLResolver) -> Iterator[str]:
    """The regular expression of every pattern under ``resolver`` (compiled by now)."""
    for entry in resolver.url_patterns:
        yield entry.pattern.regex.pattern
        if isinstance(entry, type(resolver)):
            yield from url_regexes(entry)


class PatternCompiler:
    """In the preloader, between forks: the URL patterns' regular expressions of the plan
    compiled, so that every worker it forks finds them in :mod:`re`'s cache of the most recent
    patterns (documented) and populates its URL resolver without compiling them again."""

    def __init__(self, plan_fd: int) -> None:
        self.plan_fd = plan_fd
        self.seen: set[str] = set()
        self.read_at = 0

    def precompile(self) -> None:
        """Compile the patterns the plan gained since the last time (a few ms, when idle)."""
        try:
            changed_at = os.fstat(self.plan_fd).st_mtime_ns
        except OSError:
            return
        if changed_at == self.read_at:
            return
        self.read_at = changed_at
        for pattern in read(self.plan_fd).get(PATTERNS, []):
            if pattern not in self.seen:
                self.seen.add(pattern)
                with contextlib.suppress(re.error, TypeError):
                    re.compile(pattern)


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
                    if isinstance(template, Template)
                    and isinstance(template.origin.template_name, str)
                    and template.origin.template_name
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
