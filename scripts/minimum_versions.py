"""The minimum-versions job: each serving extra with every direct dependency at its declared floor.

    python scripts/minimum_versions.py [EXTRA ...]     (uv on PATH or in the test virtualenv)

For each extra (``uvicorn``, ``daphne``, ``hypercorn`` with ``http3``, ``granian``, ``gunicorn``;
never ``[all]``: the gunicorn extra's uvicorn floor is above the uvicorn extra's), a virtualenv
``.venv-min-EXTRA`` on the oldest supported Python gets:

1. the package with that extra, resolved with ``uv pip install --resolution lowest-direct``: the
   floors ``pyproject.toml`` declares for Django, asgiref, watchfiles and the extra's servers,
   the newest release of everything those pull in (as a user pinning the floors would get);
2. a check that each direct dependency really is at its declared floor: a floor that cannot be
   installed with the others (one of them requires more) fails the job, naming both versions;
3. the test tools, constrained to what step 1 installed (so they cannot lift a floor);
4. the tests that matter for that extra, on that backend only (``TESTS`` and ``CORE_TESTS``):
   serving, WebSockets, a reload that refuses no request, Ctrl+C and SIGTERM with a stream open,
   the graceful stop, and the upstream probes; with the uvicorn extra, also the core's tests
   against the lowest Django, asgiref and watchfiles: the unit tests, some usage errors, the
   reloader (its browser-tab stream with django-browser-reload at the test extra's floor) and
   both of the handler's paths.

Prints a table of the versions tested and the time each extra took; exits non-zero on the first
extra whose floors or tests fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = "3.11"
#: Each job: the extras installed together, and the backend its tests serve with.
JOBS: dict[str, tuple[str, ...]] = {
    "uvicorn": ("uvicorn",),
    "daphne": ("daphne",),
    "hypercorn": ("hypercorn", "http3"),
    "granian": ("granian",),
    "gunicorn": ("gunicorn",),
}
#: What the chosen tests import (the test extra without the servers and the companions).
TEST_TOOLS = (
    *("pytest", "pytest-django", "pytest-xdist", "httpx[http2]", "websockets", "trustme"),
    *("hypothesis", "prometheus-client", "psycopg[binary]"),
)
#: The tests run for every extra, on its backend (``{backend}``: the backend's name).
TESTS = (
    "tests/e2e/test_every_backend_serves.py",
    "tests/e2e/test_serving.py::test_websocket_round_trip[{backend}]",
    "tests/e2e/test_serving.py::test_request_log[{backend}]",
    "tests/e2e/test_reload.py::test_no_request_fails_while_reloading",
    "tests/e2e/test_shutdown.py::test_stop_with_an_open_stream_exits_cleanly",
    "tests/e2e/test_graceful.py::test_sigterm_lets_a_slow_request_finish",
    "tests/e2e/test_upstream_servers.py",
)
#: The core's tests, run once (with the uvicorn extra): Django, asgiref and watchfiles at theirs.
CORE_TESTS = (
    "tests/unit",
    *(
        f"tests/e2e/test_usage_errors.py::{name}"
        for name in (
            "test_bad_addrport",
            "test_port_in_use",
            "test_unknown_backend_lists_the_valid_ones",
            "test_backend_not_installed",
            "test_the_core_imports_without_any_backend",
            "test_debug_off_needs_allowed_hosts",
        )
    ),
    "tests/e2e/test_reload.py",
    "tests/e2e/test_sync_path.py",
    "tests/e2e/test_async_path.py",
    "tests/e2e/test_upstream_django.py",
)
CORE_JOB = "uvicorn"
#: An optional integration asgiserve relies on, at the test extra's floor in the core's job.
INTEGRATION = "django-browser-reload"


class JobFailed(Exception):
    """One extra's floors or tests failed; the message says which."""


def uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
    if not Path(found).exists():
        sys.exit("minimum_versions: uv is needed (pip install uv; it is in the test extra)")
    return found


def test_extra_floor(name: str) -> str:
    """The floor the test extra declares for ``name`` (an optional integration)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["optional-dependencies"]["test"]:
        if normalized(requirement.partition(">=")[0]) == name:
            return f"{name}=={requirement.partition('>=')[2]}"
    raise JobFailed(f"the test extra names no {name}")


def floors(extras: tuple[str, ...]) -> dict[str, str]:
    """The declared floor of each direct dependency of the core and ``extras``, by project name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in extras:
        requirements += project["optional-dependencies"][extra]
    found: dict[str, str] = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*(>=\s*([^,;\s]+))?.*", requirement)
        if match and match[4]:
            found[normalized(match[1])] = match[4]
    return found


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def same_version(installed: str, floor: str) -> bool:
    """``3.8.0`` is the floor ``3.8``; ``3.8.1`` is not."""

    def parts(version: str) -> list[int]:
        numbers = [int(n) for n in re.findall(r"\d+", version.split("+")[0])]
        while numbers and numbers[-1] == 0:
            numbers.pop()
        return numbers

    return parts(installed) == parts(floor)


def run(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env)
    if result.returncode:
        output = result.stdout + result.stderr
        raise JobFailed(f"{' '.join(args)} exited {result.returncode}:\n{output}")
    return result.stdout


def install(job: str, extras: tuple[str, ...]) -> tuple[Path, dict[str, str]]:
    """The job's virtualenv with the package at its floors and the test tools; the versions of
    the direct dependencies installed."""
    venv = ROOT / f".venv-min-{job}"
    python = venv / "bin" / "python"
    if not python.exists():
        run(uv(), "venv", "--quiet", "--python", PYTHON, str(venv))
    target = ("--python", str(python))
    spec = f"{ROOT}[{','.join(extras)}]"
    run(uv(), "pip", "install", "--quiet", *target, "--resolution", "lowest-direct", "-e", spec)
    frozen = venv / "floors.txt"
    lines = run(uv(), "pip", "freeze", *target).splitlines()
    frozen.write_text("".join(f"{line}\n" for line in lines if "==" in line))
    tools = [*TEST_TOOLS, *([test_extra_floor(INTEGRATION)] if job == CORE_JOB else [])]
    run(uv(), "pip", "install", "--quiet", *target, "-c", str(frozen), *tools)
    installed = {}
    for line in run(uv(), "pip", "freeze", *target).splitlines():
        name, _, version = line.partition("==")
        if version:
            installed[normalized(name)] = version
    return venv, installed


def check_floors(extras: tuple[str, ...], installed: dict[str, str]) -> None:
    wrong = [
        f"{name}: declared >={floor}, the lowest installable with the rest is "
        f"{installed.get(name, 'none')}"
        for name, floor in floors(extras).items()
        if not same_version(installed.get(name, ""), floor)
    ]
    if wrong:
        raise JobFailed("floors that cannot be installed:\n  " + "\n  ".join(wrong))


def run_tests(job: str, venv: Path) -> None:
    tests = [test.format(backend=job) for test in TESTS]
    if job == CORE_JOB:
        tests += CORE_TESTS
    env = {**os.environ, "ASGISERVE_TEST_BACKENDS": job}
    env.pop("VIRTUAL_ENV", None)
    python = str(venv / "bin" / "python")
    command = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "2"]
    result = subprocess.run([*command, *tests], cwd=ROOT, env=env)
    if result.returncode:
        raise JobFailed(f"the tests of the {job} extra failed at its floors")


def main(argv: list[str]) -> int:
    jobs = argv or list(JOBS)
    unknown = [job for job in jobs if job not in JOBS]
    if unknown:
        sys.exit(f"minimum_versions: unknown {', '.join(unknown)}; choose from {', '.join(JOBS)}")
    rows = []
    for job in jobs:
        started = time.monotonic()
        extras = JOBS[job]
        print(f"minimum_versions: [{','.join(extras)}] at its floors...", flush=True)
        try:
            venv, installed = install(job, extras)
            names = [*floors(extras), *([INTEGRATION] if job == CORE_JOB else [])]
            tested = {name: installed.get(name, "?") for name in names}
            print("  " + ", ".join(f"{name} {version}" for name, version in tested.items()))
            check_floors(extras, installed)
            run_tests(job, venv)
        except JobFailed as error:
            print(f"minimum_versions: FAILED: {error}", file=sys.stderr)
            return 1
        rows.append((job, tested, time.monotonic() - started))
    print("\nminimum_versions: passed")
    for job, tested, seconds in rows:
        versions = ", ".join(f"{name} {version}" for name, version in tested.items())
        print(f"  {job:<10} {seconds:6.0f} s   {versions}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
