"""A start-up tried many times: how each try's server ended, and every try's problems reported
together once all have run (how often something goes wrong is the finding, not only whether).

A problem is a line ``"kind: details"``; the summary counts the kinds (``hung``, ``exit code``,
``left behind``, ...) over the tries.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest

from tests.helpers.procfs import describe
from tests.helpers.server import Server, port_is_free

#: How much of a failed try's output a failure shows (its end, where the error is).
OUTPUT_TAIL = 3000
#: Failed tries whose output a failure shows in full.
SHOWN = 2
#: A line of runserver's request log.
REQUEST_LOG = re.compile(r'^\[[^]]+\] "[A-Z]+ \S+ HTTP/[\d.]+" \d{3} ')


@dataclass
class Tries:
    """The tries of one test, each with its problems (none: it went right) and notes (what it
    was: its exit code, its moment, ...)."""

    problems: list[list[str]] = field(default_factory=list)
    notes: Counter[str] = field(default_factory=Counter)
    #: Of each failed try: what it was (its moment, ...) and its output.
    contexts: dict[int, str] = field(default_factory=dict)
    outputs: dict[int, str] = field(default_factory=dict)

    def add(
        self, problems: list[str], output: str, notes: tuple[str, ...] = (), context: str = ""
    ) -> None:
        """One try: its ``problems``, ``notes`` counted over the tries and, should it have
        failed, its ``context`` and ``output`` for the failure message."""
        if problems:
            self.contexts[len(self.problems)] = context
            self.outputs[len(self.problems)] = output
        self.problems.append(problems)
        self.notes.update(notes)

    @property
    def failed(self) -> int:
        return sum(bool(problems) for problems in self.problems)

    def summary(self) -> str:
        """``"10 tries, 3 failed (hung 2, exit code 1); exit 1 x7, ..."``."""
        kinds = Counter(p.partition(":")[0] for problems in self.problems for p in set(problems))
        text = f"{len(self.problems)} tries, {self.failed} failed"
        if kinds:
            text += " (" + ", ".join(f"{kind} {count}" for kind, count in kinds.items()) + ")"
        if self.notes:
            text += "; " + ", ".join(
                f"{note} x{count}" for note, count in sorted(self.notes.items())
            )
        return text

    def check(self) -> None:
        """Fail with every failed try's problems, and the output of the first ones."""
        if not self.failed:
            return
        lines = [self.summary()]
        for number, problems in enumerate(self.problems):
            if problems:
                context = f" ({self.contexts[number]})" if self.contexts[number] else ""
                lines.append(f"try {number}{context}: " + "; ".join(problems))
        for number in list(self.outputs)[:SHOWN]:
            lines.append(f"--- output of try {number} (its end) ---")
            lines.append(condensed(self.outputs[number])[-OUTPUT_TAIL:])
        pytest.fail("\n".join(lines), pytrace=False)


def condensed(output: str) -> str:
    """``output`` with each run of request log lines as one line saying how many."""
    lines: list[str] = []
    run = 0
    for line in [*output.splitlines(), ""]:
        if REQUEST_LOG.search(line):
            run += 1
            continue
        if run:
            lines.append(f"[{run} request log lines]")
            run = 0
        lines.append(line)
    return "\n".join(lines)


def end_of(server: Server, port: int, bound: float) -> list[str]:
    """Problems with how ``server`` ends: still running ``bound`` seconds from now (it hung: then
    it is killed), a process of its session still alive at that deadline, ``port`` still bound
    once they are all gone."""
    deadline = time.monotonic() + bound
    problems = []
    try:
        server.process.wait(bound)
    except subprocess.TimeoutExpired:
        survivors = "; ".join(describe(pid) for pid in server.group_pids())
        problems.append(f"hung: still running after {bound:g} s ({survivors})")
        server.kill()
    while server.group_pids() and time.monotonic() < deadline:
        time.sleep(0.02)
    if left := server.group_pids():
        survivors = "; ".join(describe(pid) for pid in left)
        problems.append(f"left behind: {survivors}")
        server.kill()
    elif not port_is_free(port):
        problems.append(f"port still bound: {port}, once every process had ended")
    server.stdout.join()
    server.stderr.join()
    return problems


def interrupt(server: Server, signum: int, group: bool) -> None:
    """``signum`` to the server's process group (a terminal's Ctrl+C) or to it alone."""
    if group:
        os.killpg(server.process.pid, signum)
    else:
        os.kill(server.process.pid, signum)


def exit_note(server: Server) -> str:
    code = server.process.returncode
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit {code}"
