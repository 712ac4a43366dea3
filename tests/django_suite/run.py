"""Run Django's own test suite (from the installed release's sdist) with asgiserve's handler.

    python tests/django_suite/run.py [--no-substitute] [--async-client] [--postgres]
        [--cache DIR] LABEL... [-- RUNTESTS-ARGS]

"Substituted" means: wherever Django's code or tests build the ASGI handler
(``django.core.handlers.asgi.ASGIHandler`` or ``django.core.asgi.get_asgi_application``, which
``tests/asgi`` and ``staticfiles_tests`` use), they get
:class:`django_asgiserve.asgi.handler.SyncFastHandler`. Django's test ``Client`` and
``AsyncClient`` do not use ``ASGIHandler`` (they run ``BaseHandler`` directly) and are left alone.
With ``--no-substitute`` the same labels run against Django's own handler, for comparison.
``--async-client`` also gives ``AsyncClient``'s handler the merged async middleware chain
(``django_asgiserve.asgi.async_chain``), so that the many tests written with ``AsyncClient``
(middleware, exceptions, template responses) go through it.

``--postgres`` runs the labels on PostgreSQL instead of Django's default SQLite: a private
cluster started as the tests start theirs (``tests/helpers/postgres.py``), with Django's
``test_sqlite`` settings but for ``DATABASES``. It needs what Django's
``tests/requirements/postgres.txt`` asks for (``psycopg[binary]``, ``psycopg-pool``).

The sdist is downloaded from PyPI once (``pip download``) into the cache directory (default: under
the running interpreter's prefix). Exit status: 0 when every test passed, 1 on failures,
2 when the sdist cannot be had (no network).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import runpy
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

#: Exit status when PyPI is unreachable (the pytest wrapper skips on it).
UNAVAILABLE = 2
DEFAULT_LABELS = ("handlers", "asgi", "middleware")


def django_tests(cache: Path) -> Path:
    """The ``tests`` directory of the installed Django release's sdist, fetched if needed."""
    import django

    version = django.get_version()
    unpacked = cache / f"django-{version}"
    if (unpacked / "tests" / "runtests.py").is_file():
        return unpacked / "tests"
    cache.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-binary",
            ":all:",
            "--no-deps",
            f"Django=={version}",
            "--dest",
            str(cache),
        ],
        capture_output=True,
        text=True,
    )
    archives = sorted(cache.glob(f"[Dd]jango-{version}.tar.gz"))
    if result.returncode or not archives:
        sys.stderr.write(f"cannot download Django {version}'s sdist:\n{result.stderr}")
        raise SystemExit(UNAVAILABLE)
    with tarfile.open(archives[0]) as archive:
        archive.extractall(cache, filter="data")
    return unpacked / "tests"


def substitute() -> None:
    """Make Django build asgiserve's handler wherever it builds its ASGI handler."""
    import django.core.asgi
    import django.core.handlers.asgi

    from django_asgiserve.asgi import handler

    django.core.handlers.asgi.ASGIHandler = handler.SyncFastHandler
    django.core.asgi.ASGIHandler = handler.SyncFastHandler
    django.core.asgi.get_asgi_application = handler.get_asgi_application


def merge_async_client() -> None:
    """Make ``AsyncClient`` build its handler with the merged async middleware chain."""
    import django.test.client

    from django_asgiserve.asgi import async_chain

    class MergedAsyncClientHandler(django.test.client.AsyncClientHandler):  # type: ignore[misc]
        def load_middleware(self, is_async: bool = False) -> None:
            super().load_middleware(is_async)
            if is_async:
                async_chain.merge(self)

    django.test.client.AsyncClientHandler = MergedAsyncClientHandler


POSTGRES_SETTINGS = """# Django's test_sqlite settings, on the PostgreSQL cluster run.py started.
from test_sqlite import *  # noqa: F403

DATABASES = {databases!r}
"""


@contextlib.contextmanager
def postgres_settings(cache: Path) -> Iterator[str]:
    """A settings module for Django's suite on a private PostgreSQL cluster, running until the
    block ends; its name."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.helpers.postgres import cluster

    with cluster() as postgres:
        databases = {
            alias: postgres.django_settings(f"django_{alias}") for alias in ("default", "other")
        }
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "asgiserve_postgres.py").write_text(POSTGRES_SETTINGS.format(databases=databases))
        sys.path.insert(0, str(cache))
        yield "asgiserve_postgres"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-substitute", action="store_true", help="run Django's own handler")
    parser.add_argument(
        "--async-client", action="store_true", help="give AsyncClient the merged async chain"
    )
    parser.add_argument("--postgres", action="store_true", help="on a private PostgreSQL cluster")
    parser.add_argument("--cache", type=Path, default=Path(sys.prefix) / "django-suite-cache")
    parser.add_argument("labels", nargs="*", default=list(DEFAULT_LABELS))
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    options = parser.parse_args(argv)
    tests = django_tests(options.cache)
    if not options.no_substitute:
        substitute()
    with contextlib.ExitStack() as stack:
        settings = "test_sqlite"
        if options.postgres:
            settings = stack.enter_context(postgres_settings(options.cache))
        # Django's suite settings, not a caller's (pytest-django exports its own).
        os.environ["DJANGO_SETTINGS_MODULE"] = settings
        os.chdir(tests)
        sys.path.insert(0, str(tests))
        if options.async_client:
            merge_async_client()
        sys.argv = [str(tests / "runtests.py"), "--parallel", "1", *extra, *options.labels]
        runpy.run_path(str(tests / "runtests.py"), run_name="__main__")


if __name__ == "__main__":
    main()
