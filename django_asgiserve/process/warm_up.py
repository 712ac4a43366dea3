"""What a worker builds before it says ``loaded``, so that its first request costs what its
second does: the URL resolver's reverse lookups, the template engines with their loaders and the
project's own templates compiled into the cached loader, all with ``LANGUAGE_CODE`` active (its
translation catalog loaded, if setting Django up had not). A forked backend worker (gunicorn's)
inherits all of it.

It never runs a view or a middleware (either may have side effects); what runs of the project's
code is what importing its template tag libraries and compiling its templates runs. A step that
fails is skipped: the first request builds that part as it would have, and shows any error.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.template import Engine

#: Templates compiled at most per engine: a project with more compiles the rest on demand.
MAX_TEMPLATES = 500
#: Never a name that ``reverse()`` could find: reversing it populates the lookups, then fails.
NO_SUCH_URL_NAME = "asgiserve: warm-up"


def warm_up(*, verbose: bool = False) -> None:
    """Build what the first request would; with ``verbose``, say which step failed."""
    from django.conf import settings
    from django.utils import translation

    with translation.override(settings.LANGUAGE_CODE):
        for step in STEPS:
            try:
                step()
            except Exception:
                if verbose:
                    sys.stderr.write(f"Warm-up skipped {step.__name__}():\n")
                    traceback.print_exc()


def populate_urls() -> None:
    """``reverse()`` of a name no URLconf has builds every reverse lookup of the root URLconf
    for the active language (public API only), then fails as expected."""
    from django.conf import settings
    from django.urls import NoReverseMatch, reverse

    if getattr(settings, "ROOT_URLCONF", None):
        with contextlib.suppress(NoReverseMatch):
            reverse(NO_SUCH_URL_NAME)


def load_templates() -> None:
    """Every Django template engine with its loaders, and when they cache, the project's own
    templates compiled (not those of installed packages: they may be many, and rarely all used)."""
    from django.template import engines
    from django.template.backends.django import DjangoTemplates

    for backend in engines.all():
        if isinstance(backend, DjangoTemplates) and caches(backend.engine):
            compile_templates(backend.engine, project_template_dirs(backend.engine))


def caches(engine: Engine) -> bool:
    from django.template.loaders.cached import Loader as CachedLoader

    return any(isinstance(loader, CachedLoader) for loader in engine.template_loaders)


def project_template_dirs(engine: Engine) -> list[Path]:
    """The engine's ``DIRS`` and, with ``APP_DIRS``, the template folders of the project's apps."""
    from django.template.utils import get_app_template_dirs

    from django_asgiserve.reload.sources import library_paths

    dirs = [Path(d) for d in engine.dirs]
    if engine.app_dirs:
        libraries = library_paths()
        dirs += [
            d
            for d in map(Path, get_app_template_dirs("templates"))
            if not any(d.resolve().is_relative_to(lib) for lib in libraries)
        ]
    return dirs


def compile_templates(engine: Engine, dirs: list[Path]) -> None:
    """Each template under ``dirs`` by the name a view would use, into the cached loader."""
    for count, name in enumerate(template_names(dirs)):
        if count >= MAX_TEMPLATES:
            return
        with contextlib.suppress(Exception):  # its request shows the error, as without warm-up
            engine.get_template(name)


def template_names(dirs: list[Path]) -> Iterator[str]:
    seen: set[str] = set()
    for root in dirs:
        for folder, subfolders, files in os.walk(root):
            subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
            for file in sorted(files):
                name = Path(folder, file).relative_to(root).as_posix()
                if not file.startswith(".") and name not in seen:
                    seen.add(name)
                    yield name


STEPS: tuple[Callable[[], None], ...] = (populate_urls, load_templates)
