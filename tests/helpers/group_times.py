"""Where a run's time goes: the summed durations (setup, call and teardown) of each group's
tests, printed at the end of the run, the slowest group first.

A test's group is its first mark of ``MARKED`` (the groups CI and the docs speak of), else its
folder under ``tests/`` (``unit``, ``e2e``). Registered by ``tests/conftest.py``; it reads the
reports, so under xdist the controller sums the workers' tests (whose times overlap: the sum is
what the group costs, not how long the run waited for it).
"""

from __future__ import annotations

from collections import Counter

import pytest

MARKED = ("under_load", "fleet", "browser", "reliability", "django_suite")


def group_of(report: pytest.TestReport) -> str:
    for mark in MARKED:
        if mark in report.keywords:
            return mark
    parts = report.nodeid.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else parts[0]


class GroupTimes:
    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.tests: Counter[str] = Counter()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        group = group_of(report)
        self.seconds[group] += report.duration
        self.tests[group] += report.when == "call"

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.seconds:
            return
        terminalreporter.section("time per group")
        for group, seconds in self.seconds.most_common():
            terminalreporter.write_line(f"{seconds:7.0f} s  {self.tests[group]:5d} tests  {group}")
