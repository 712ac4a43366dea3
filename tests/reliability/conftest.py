"""The reliability suite's switches and its report.

``--soak`` turns the short version (what a plain ``pytest`` runs) into the long one: more
reloads, more examples, longer abuse, every backend for scenarios that otherwise take one
backend in turn (``rotating_backend``). Tests call ``record(scenario, load, result)`` once per
scenario with the figures they measured, before asserting on them, so a failing run still
shows them; ``--reliability-report PATH`` writes every row, with the test's outcome, as
Markdown.
"""

from __future__ import annotations

import itertools
import os
import platform
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from tests.helpers.server import BACKENDS

AREAS = {
    "test_soak": "Soak",
    "test_faults": "Faults",
    "test_bad_input": "Bad input",
    "test_security": "Security defaults",
}
#: Tests of the main suite that are the evidence for part of the issue, so not repeated here.
ELSEWHERE = [
    ("Faults",
     "tests/e2e/test_shutdown.py::test_kill_9_of_the_supervisor_leaves_nothing_behind",
     "kill -9 of the supervisor: no process survives, the port is free"),
    ("Faults",
     "tests/e2e/test_shutdown.py::test_kill_9_of_the_supervisor_ends_a_worker_mid_request",
     "kill -9 of the supervisor during a 30 s request: the worker ends at once"),
    ("Faults", "tests/e2e/test_shutdown.py::"
     "test_kill_9_of_the_supervisor_with_unread_messages_leaves_nothing_behind",
     "kill -9 of a stopped supervisor with unread worker messages: nothing survives"),
    ("Faults", "tests/e2e/test_shutdown.py::test_a_killed_worker_is_replaced",
     "kill -9 of an idle worker: a new one serves, the supervisor keeps its pid"),
    ("Faults", "tests/e2e/test_proxy_and_lifespan.py::"
     "test_workers_share_the_socket_and_a_killed_one_is_replaced",
     "--workers 2, one killed: the survivor serves while a replacement starts"),
    ("Faults", "tests/e2e/test_shutdown.py::test_stop_with_an_open_stream_exits_cleanly",
     "Ctrl+C / SIGTERM with an event stream open, every backend: exit 0, nothing left"),
    ("Faults", "tests/e2e/test_reload.py::test_no_request_fails_while_reloading",
     "5 edits under continuous requests, every backend: no failed request, no old code back"),
    ("Faults", "tests/e2e/test_reload.py::test_a_burst_of_edits_reloads_at_most_twice",
     "30 new modules and every project file rewritten at once: 1-2 reloads"),
    ("Faults",
     "tests/e2e/test_reload.py::test_syntax_error_in_a_view_serves_the_traceback_and_recovers",
     "broken code after an edit: error page, then recovery on the fix"),
    ("Bad input", "tests/test_addrport.py::test_any_text_gives_an_address_or_a_command_error",
     "hypothesis: any addrport text parses or is one CommandError"),
    ("Bad input", "tests/test_addrport.py::test_accepts_exactly_what_runserver_accepts",
     "hypothesis: the grammar is runserver's"),
    ("Bad input", "tests/e2e/test_usage_errors.py::test_bad_asgiserve_setting",
     "each ASGISERVE mistake: one message, exit 1, no traceback"),
    ("Security defaults",
     "tests/e2e/test_serving.py::test_path_traversal_never_returns_a_project_file",
     "11 traversal paths (.., %2e%2e, %2f, %252e, backslash, //etc) on every backend"),
    ("Security defaults", "tests/e2e/test_serving.py::test_static_serving_follows_runserver",
     "static files off with DEBUG off unless --insecure; --nostatic wins"),
    ("Security defaults",
     "tests/e2e/test_proxy_and_lifespan.py::test_proxy_headers_are_ignored_by_default",
     "X-Forwarded-* ignored without --proxy-headers, every backend"),
    ("Security defaults",
     "tests/e2e/test_proxy_and_lifespan.py::test_proxy_headers_are_ignored_from_an_untrusted_peer",
     "X-Forwarded-* ignored from a peer outside --forwarded-allow-ips, every backend"),
    ("Security defaults",
     "tests/e2e/test_reload.py::test_broken_code_without_debug_hides_the_traceback",
     "broken code with DEBUG off: a bare 500, no traceback, no path"),
]  # fmt: skip


@dataclass
class Row:
    area: str
    scenario: str
    load: str
    result: str
    nodeid: str


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)


REPORT = pytest.StashKey[Report]()
_rotation = itertools.count()


def report_of(config: pytest.Config) -> Report:
    if REPORT not in config.stash:
        config.stash[REPORT] = Report()
    return config.stash[REPORT]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rotating_backend" in metafunc.fixturenames and metafunc.config.getoption("--soak"):
        metafunc.parametrize("rotating_backend", BACKENDS)


@pytest.fixture
def rotating_backend() -> str:
    """Every backend with ``--soak`` (see above); otherwise the next one in turn, so that a
    short run still spreads the scenarios over all of them."""
    return BACKENDS[next(_rotation) % len(BACKENDS)]


@pytest.fixture(scope="session")
def soak(pytestconfig: pytest.Config) -> bool:
    return bool(pytestconfig.getoption("--soak"))


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Callable[[str, object, str], None]:
    """``record(scenario, load, result)``: one row of the report for this test."""
    report = report_of(request.config)
    area = AREAS.get(request.node.path.stem, request.node.path.stem)

    def add(scenario: str, load: object, result: str) -> None:
        report.rows.append(Row(area, scenario, str(load), result, request.node.nodeid))

    return add


class ReportPlugin:
    """Keeps the outcome of every reliability test and writes the report at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if "reliability" not in report.keywords:
            return
        outcomes = report_of(self.config).outcomes
        # The worst of setup, call and teardown.
        worse = report.when == "call" or report.outcome != "passed"
        if worse and outcomes.get(report.nodeid) in (None, "passed"):
            outcomes[report.nodeid] = report.outcome

    def pytest_sessionfinish(self) -> None:
        path = self.config.getoption("--reliability-report")
        if path:
            Path(path).write_text(render(self.config, report_of(self.config)))


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("reliability-report"):
        config.pluginmanager.register(ReportPlugin(config), "reliability-report")


def distribution(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(config: pytest.Config, report: Report) -> str:
    """The report as Markdown: how it was made, on what, then one table per area."""
    import django

    arguments = shlex.join(config.invocation_params.args)
    mode = "long (--soak)" if config.getoption("--soak") else "short (the default test run)"
    counts = {
        outcome: sum(1 for o in report.outcomes.values() if o == outcome)
        for outcome in ("passed", "failed", "skipped")
    }
    backends = ", ".join(f"{name} {distribution(name)}" for name in BACKENDS)
    lines = [
        "# Reliability and security report",
        "",
        "Generated by the reliability suite (`tests/reliability/`); regenerate it with the",
        "command below. Every figure comes from real `manage.py asgiserve` processes on loopback",
        "ports, driven by real clients, signals and file edits.",
        "",
        f"- Command: `python -m pytest {arguments}`",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Mode: {mode}",
        f"- Python {platform.python_version()} on {platform.system()} {platform.machine()}, "
        f"{os.cpu_count()} cores{', as root' if os.geteuid() == 0 else ''}",
        f"- Django {django.get_version()}; {backends}; watchfiles {distribution('watchfiles')}",
        f"- Tests: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['skipped']} skipped",
        "",
    ]
    for area in [*dict.fromkeys([*AREAS.values(), *(row.area for row in report.rows)])]:
        rows = [row for row in report.rows if row.area == area]
        if not rows:
            continue
        lines += [f"## {area}", "", "| scenario | load | result | test |", "|---|---|---|---|"]
        for row in rows:
            outcome = report.outcomes.get(row.nodeid, "not finished")
            name = row.nodeid.rpartition("::")[2]
            lines.append(
                f"| {cell(row.scenario)} | {cell(row.load)} | {cell(row.result)} | "
                f"{outcome}: `{cell(name)}` |"
            )
        lines.append("")
    lines += [
        "## Covered by the main suite",
        "",
        "These scenarios are tested outside `tests/reliability/` (run by a plain `pytest`, not",
        "by the command above); they are not repeated here.",
        "",
        "| area | test | what it shows |",
        "|---|---|---|",
        *(f"| {area} | `{cell(test)}` | {cell(what)} |" for area, test, what in ELSEWHERE),
        "",
    ]
    return "\n".join(lines)
