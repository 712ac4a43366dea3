"""Figures a test measured, printed in a section of their own at the end of the run.

A test's figures travel as a user property of its reports, so that they reach the process that
prints the summary: an xdist worker's memory does not. :class:`Summary` is registered by
``tests/conftest.py`` (a folder's own conftest is not loaded in xdist's controller).
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

PROPERTY = "figures"


def record(node: pytest.Item, section: str, figures: dict[str, object]) -> None:
    """Keep ``figures`` for the end of the run, under ``section``, with the test's name."""
    plain = json.loads(json.dumps(figures, default=str))  # what xdist can send
    node.user_properties.append((PROPERTY, (section, node.name, plain)))


class Summary:
    """Collects every test's figures from its reports; prints them, one section each."""

    def __init__(self) -> None:
        self.sections: dict[str, list[tuple[str, dict[str, object]]]] = defaultdict(list)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown":  # its properties are all the test recorded
            return
        for name, value in report.user_properties:
            if name == PROPERTY:
                section, test, figures = value
                self.sections[section].append((test, figures))

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        for section, rows in self.sections.items():
            terminalreporter.section(section)
            for test, figures in rows:
                terminalreporter.write_line(test)
                for name, value in figures.items():
                    terminalreporter.write_line(f"    {name}: {value}")
