"""The suite's fixtures: real servers (``start``), a private copy of ``testproject`` for each test
(``project``) and the backend parameter (``backend``), with the reliability suite's options.

What they are built from lives in ``tests/helpers``; the names below are imported here too so
that test modules written against this module keep working.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import figures
from tests.helpers.group_times import GroupTimes
from tests.helpers.local_ca import LocalCA
from tests.helpers.polling import DEADLINE, wait_for  # noqa: F401 - re-exported
from tests.helpers.postgres import Cluster, binaries, cluster, unprivileged_user
from tests.helpers.process_models import PROCESS_MODELS, WORKER_MODELS
from tests.helpers.server import (  # noqa: F401 - re-exported
    BACKENDS,
    BANNER_URL,
    REPO,
    TESTED_BACKENDS,
    TESTPROJECT,
    EventStream,
    Output,
    Server,
    child_environ,
    copy_project,
    port_is_free,
)

#: Marks whose tests share something between them, or need the machine to themselves, mapped to
#: the xdist group they run in (``--dist loadgroup`` sends a group's tests to one worker, in
#: turn): the fleet's namespaces, nginx and Redis are made once per module; two Chromiums at
#: once would starve the servers each drives.
XDIST_GROUPS = {"fleet": "fleet", "browser": "browser"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for mark, group in XDIST_GROUPS.items():
            if item.get_closest_marker(mark) is not None:
                item.add_marker(pytest.mark.xdist_group(group))


def pytest_configure(config: pytest.Config) -> None:
    # Each xdist worker would write its own part of the report over the others'.
    if config.getoption("--reliability-report") and config.getoption("numprocesses", None):
        raise pytest.UsageError("--reliability-report writes one process's report: drop -n")
    if not config.pluginmanager.has_plugin("figures-summary"):
        config.pluginmanager.register(figures.Summary(), "figures-summary")
    if not config.pluginmanager.has_plugin("group-times") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(GroupTimes(), "group-times")
    # A test run started in the background by a non-interactive shell (``cmd &``, nohup, some
    # CI runners) inherits SIGINT ignored, and so would every server it starts: Python leaves
    # an ignored SIGINT ignored, so a Ctrl+C test's early signal would be lost. Servers start
    # as from a terminal: SIGINT at its default (a handled signal is reset to it by exec).
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("reliability", "the reliability suite (tests/reliability)")
    group.addoption(
        "--soak",
        action="store_true",
        help="run the long version of the reliability suite (hundreds of reloads, every backend)",
    )
    group.addoption(
        "--reliability-report",
        metavar="PATH",
        help="write the reliability suite's figures to PATH as Markdown",
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A private copy of ``testproject``."""
    return copy_project(tmp_path / "testproject")


@pytest.fixture
def start(project: Path) -> Iterator[Callable[..., Server]]:
    """Start servers on ``project``; each is killed, with its whole session, at teardown."""
    servers: list[Server] = []

    def starter(
        *args: str,
        env: dict[str, str] | None = None,
        command: str = "asgiserve",
        addrport: str | None = "127.0.0.1:0",
        cwd: Path | None = None,
        launcher: tuple[str, ...] = (),
        pass_fds: tuple[int, ...] = (),
    ) -> Server:
        arguments = [*args] + ([addrport] if addrport else [])
        server = Server(cwd or project, arguments, env, command, launcher, pass_fds)
        servers.append(server)
        return server

    yield starter
    for server in servers:
        server.kill()


@pytest.fixture
def local_ca(tmp_path: Path) -> LocalCA:
    """Where this test's ``--https`` servers keep their certificate authority, and the home
    directory they (and Chromium) run in: never the user's."""
    (tmp_path / "home").mkdir()
    return LocalCA(tmp_path / "ca", tmp_path / "home")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this test session's own (one per xdist worker), stopped at the
    end; the tests that use it are skipped when PostgreSQL is not installed."""
    try:
        binaries(), unprivileged_user()
    except LookupError as error:
        pytest.skip(str(error))
    with cluster() as running:
        yield running


@pytest.fixture(params=TESTED_BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=list(PROCESS_MODELS))
def process_model(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """The arguments of a process model: fork (the default, no option) or spawn."""
    return PROCESS_MODELS[request.param]


@pytest.fixture(params=list(WORKER_MODELS))
def worker_model(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """As ``process_model``, and spawn with two workers."""
    return WORKER_MODELS[request.param]
