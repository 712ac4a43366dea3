"""The ``asgi_live_server`` fixture for pytest-django (loaded through the ``pytest11`` entry point),
and ``asgi_live_server_https``, the same over HTTPS (see :mod:`django_asgiserve.https`).

Used as pytest-django's ``live_server``: started once per session (per xdist worker, each with
its own port and test database), and a test that uses it gets ``transactional_db``, so rows it
creates are committed where the server sees them and each test starts with empty tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from django_asgiserve import backends

if TYPE_CHECKING:
    from django_asgiserve.live.server import ASGILiveServer

BACKEND_OPTION = "asgi_live_server_backend"
#: The fixtures that serve the project (each started once per session, when first used).
LIVE_SERVERS = ("asgi_live_server", "asgi_live_server_https")


def pytest_addoption(parser: pytest.Parser) -> None:
    help_text = (
        "backend of the asgi_live_server fixture: auto (the default: ASGISERVE['TEST_BACKEND'], "
        f"then the first installed that can serve in a thread), {', '.join(backends.NAMES)}"
    )
    group = parser.getgroup("django-asgiserve")
    group.addoption("--asgi-live-server-backend", dest=BACKEND_OPTION, help=help_text)
    parser.addini(BACKEND_OPTION, help_text, default=None)


def pytest_configure(config: pytest.Config) -> None:
    name = chosen_backend(config)
    if name is None or name == "auto":
        return
    why = backends.why_not_in_thread(name)
    if why is not None:
        raise pytest.UsageError(
            f"--asgi-live-server-backend {name}: {why}. "
            f"Choose one of: auto, {', '.join(backends.in_thread_names())}."
        )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Before the session starts: pytest-django creates test databases only for the tests that
    # ask for them, and makes a test transactional when it asks for ``transactional_db``.
    for item in items:
        names = getattr(item, "fixturenames", None)
        if names is None or "transactional_db" in names:
            continue
        if any(fixture in names for fixture in LIVE_SERVERS):
            names.append("transactional_db")


def chosen_backend(config: pytest.Config) -> str | None:
    value = config.getoption(BACKEND_OPTION) or config.getini(BACKEND_OPTION)
    return str(value).strip() if value else None


@pytest.fixture(scope="session")
def asgi_live_server(
    request: pytest.FixtureRequest, django_db_setup: None
) -> Iterator[ASGILiveServer]:
    """The project's ``ASGI_APPLICATION`` served over ASGI in a thread, on the test database."""
    yield from serve(request, https=False)


@pytest.fixture(scope="session")
def asgi_live_server_https(
    request: pytest.FixtureRequest, django_db_setup: None
) -> Iterator[ASGILiveServer]:
    """``asgi_live_server`` over HTTPS, with a certificate from the local certificate authority
    (``.ca_file`` verifies it; a browser must trust the authority: ``asgiserve_ca trust``)."""
    yield from serve(request, https=True)


def serve(request: pytest.FixtureRequest, *, https: bool) -> Iterator[ASGILiveServer]:
    from django_asgiserve.live.server import ASGILiveServer, LiveServerError

    server = ASGILiveServer(backend=chosen_backend(request.config), https=https)
    problem = None
    try:
        server.start()
    except LiveServerError as error:
        problem = str(error)
    if problem is not None:
        # Outside the except block: the message alone, as for a usage error.
        pytest.fail(problem, pytrace=False)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _asgi_live_server_helper(request: pytest.FixtureRequest) -> Iterator[None]:
    """Add the servers' hosts to ``ALLOWED_HOSTS`` during a test that uses one (a session
    fixture cannot change settings for each test, as pytest-django's ``settings`` do)."""
    used = [name for name in LIVE_SERVERS if name in request.fixturenames]
    if not used:
        yield
        return
    from django.test import modify_settings

    hosts = [request.getfixturevalue(name).host for name in used]
    with modify_settings(ALLOWED_HOSTS={"append": hosts}):
        yield
