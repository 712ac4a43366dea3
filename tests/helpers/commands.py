"""Running ``manage.py`` commands that should end by themselves, and checking that a user's
mistake ends them the Django way: one clear message, a non-zero exit code, no traceback.

``manage(..., hide=(...))`` runs the command with some packages not installed: a ``PathFinder``
that does not find them, in the process that runs the command, so ``importlib.util.find_spec``
answers ``None`` and an import fails, exactly as when the distribution is not installed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.hiding import HIDING_FINDER
from tests.helpers.polling import wait_for
from tests.helpers.server import Output, child_environ

#: Runs ``manage.py`` with the packages named in ``argv[1]`` (comma-separated) not installed.
HIDE_AND_RUN = f"""
import runpy, sys

HIDDEN = set(sys.argv[1].split(","))
{HIDING_FINDER}
sys.argv = ["manage.py", *sys.argv[2:]]
runpy.run_path("manage.py", run_name="__main__")
"""


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(cwd: Path, argv: list[str], env: dict[str, str] | None = None) -> Result:
    """Run a command that should end by itself; fail at once if it starts serving instead."""
    result, _serving = serve_or_exit(cwd, argv, env)
    assert "Quit the server with" not in result.stdout, f"it is serving:\n{result.output}"
    return result


def serve_or_exit(
    cwd: Path, argv: list[str], env: dict[str, str] | None = None
) -> tuple[Result, bool]:
    """Run a command until it exits or starts serving (then kill it); its output, and which."""
    process = subprocess.Popen(
        [sys.executable, *argv],
        cwd=cwd,
        env=child_environ(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    stdout, stderr = Output(process.stdout), Output(process.stderr)
    try:
        wait_for(
            lambda: process.poll() is not None or "Quit the server with" in stdout.text,
            what=f"{argv} to serve or exit",
        )
        serving = process.poll() is None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        stdout.join()
        stderr.join()
    return Result(process.returncode, stdout.text, stderr.text), serving


def manage(project: Path, *args: str, hide: tuple[str, ...] = (), **kwargs) -> Result:
    if hide:
        return run(project, ["-c", HIDE_AND_RUN, ",".join(hide), *args], **kwargs)
    return run(project, ["manage.py", *args], **kwargs)


def write_settings(project: Path, name: str, body: str) -> str:
    """A settings module next to the demo's, overriding some of it; returns its dotted name."""
    (project / "testproject" / f"{name}.py").write_text(
        f"from .settings import *  # noqa: F403\n\n{body}\n"
    )
    return f"testproject.{name}"


def assert_fails_clearly(result: Result, *messages: str, code: int = 1) -> None:
    assert result.code == code, result.output
    for message in messages:
        assert message in result.stderr, result.output
    assert "Traceback" not in result.output
    assert "Starting ASGI" not in result.output


def check_ids(output: str) -> set[str]:
    """The asgiserve system check ids (``asgiserve.E001``, ...) in a command's output."""
    return set(re.findall(r"\((asgiserve\.[EW]\d{3})\)", output))
