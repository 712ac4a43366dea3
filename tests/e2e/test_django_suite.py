"""Django's own tests (``handlers asgi middleware``) pass with asgiserve's handler substituted.

Runs ``tests/django_suite/run.py`` in a subprocess; it downloads the installed release's sdist
from PyPI once (cached under the virtualenv) and skips when PyPI cannot be reached.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.server import REPO

RUNNER = REPO / "tests" / "django_suite" / "run.py"
UNAVAILABLE = 2  # the runner's exit status when the sdist cannot be downloaded


@pytest.mark.django_suite
def test_django_suite_passes_with_the_fast_handler(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(RUNNER), "handlers", "asgi", "middleware"],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=tmp_path,
    )
    if result.returncode == UNAVAILABLE:
        pytest.skip(f"Django's sdist is not available from PyPI: {result.stderr.strip()[-300:]}")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "\nOK" in output and "FAILED" not in output
