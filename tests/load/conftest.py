"""The under-load group: start-up and stop tried many times on every backend while every core
is kept busy (``tests.helpers.spinning``), on the smallest project (``tests.helpers.tiny_project``)
so that each try costs little. Marked ``under_load``; CI runs it alone.

At the end of a run the terminal summary lists each test's tries (``tests.helpers.tries``) and
its duration, and the duration of the group per backend, which is what CI's time is made of.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import tiny_project
from tests.helpers.spinning import busy_cores
from tests.helpers.tries import Tries


@dataclass
class Row:
    backend: str = "?"
    seconds: float = 0.0
    summary: str = ""


class Table:
    """Each test's backend, duration (setup, call and teardown) and tries, printed at the end."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "under_load" in report.keywords:
            self.rows.setdefault(report.nodeid, Row()).seconds += report.duration

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.rows:
            return
        terminalreporter.section("under load: tries and durations")
        per_backend: dict[str, float] = defaultdict(float)
        for nodeid, row in self.rows.items():
            per_backend[row.backend] += row.seconds
            name = nodeid.rpartition("::")[2]
            terminalreporter.write_line(f"{row.seconds:6.0f} s  {name}: {row.summary}")
        terminalreporter.write_line(
            "per backend: " + ", ".join(f"{b} {s:.0f} s" for b, s in per_backend.items())
        )


TABLE = "under-load-table"


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(TABLE):
        config.pluginmanager.register(Table(), TABLE)


@pytest.fixture(autouse=True)
def busy() -> Iterator[list[int]]:
    """Every core busy for the whole test."""
    with busy_cores() as spinners:
        yield spinners


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return tiny_project.write(tmp_path / "tiny")


@pytest.fixture
def tries(request: pytest.FixtureRequest, backend: str) -> Iterator[Tries]:
    """The test's tries; their summary goes to the end-of-run table."""
    tally = Tries()
    yield tally
    table = request.config.pluginmanager.get_plugin(TABLE)
    assert isinstance(table, Table)
    row = table.rows.setdefault(request.node.nodeid, Row())
    row.backend, row.summary = backend, tally.summary()
