"""Build the package as a release would, and prove the built wheel serves a project.

    python scripts/check_package.py          (with build and twine installed: the test extra)

1. ``python -m build`` in a copy of the files git tracks or would track (so that no local
   leftover, such as an ``*.egg-info`` from an editable install, slips into the package): the
   sdist, then the wheel built from that sdist;
2. ``twine check --strict`` on both;
3. the wheel holds every module and data file of ``django_asgiserve/`` and the license;
4. a fresh virtualenv gets the wheel (not the source tree) with its ``uvicorn`` extra, a project
   made there by ``startproject`` gets ``django_asgiserve`` in ``INSTALLED_APPS``, and
   ``manage.py asgiserve --noreload`` on a free port answers a page and a static file with 200;
   then it is stopped with SIGINT, as Ctrl+C would, and must exit leaving no process behind.

Exits non-zero, saying which step failed, on any problem. Everything happens in a temporary
directory that is removed at the end.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "django_asgiserve"
BANNER = re.compile(r"server at (http://127\.0\.0\.1:(\d+)/)")
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


class CheckFailed(Exception):
    """One step went wrong; the message says which and why."""


def run(*args: str | Path, cwd: Path | None = None) -> None:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    if result.returncode:
        command = " ".join(map(str, args))
        raise CheckFailed(f"{command} exited {result.returncode}:\n{result.stdout}{result.stderr}")


@contextmanager
def step(name: str) -> Iterator[None]:
    started = time.monotonic()
    print(f"check_package: {name}...", flush=True)
    yield
    print(f"check_package: {name}: ok ({time.monotonic() - started:.1f} s)", flush=True)


def clean_copy(where: Path) -> Path:
    """The checkout's files as a fresh clone would have them, plus files not yet committed."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is listed too
            (where / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, where / name)
    return where


def build(source: Path, out: Path) -> tuple[Path, Path]:
    run(sys.executable, "-m", "build", "--outdir", out, source)
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise CheckFailed(f"expected one wheel and one sdist in {out}, found {os.listdir(out)}")
    run(sys.executable, "-m", "twine", "check", "--strict", wheels[0], sdists[0])
    return wheels[0], sdists[0]


def check_wheel_contents(wheel: Path, source: Path) -> None:
    """The wheel holds every file of the package's source (modules and data) and the license."""
    expected = {path.relative_to(source).as_posix() for path in (source / PACKAGE).rglob("*")}
    expected = {name for name in expected if (source / name).is_file()}
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = expected - names
    if missing:
        raise CheckFailed(f"{wheel.name} lacks {sorted(missing)}")
    if not any(re.search(r"\.dist-info/licenses/LICENSE$", name) for name in names):
        raise CheckFailed(f"{wheel.name} lacks the LICENSE file")


def install(wheel: Path, venv: Path) -> Path:
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", f"{wheel}[uvicorn]")
    return python


def make_project(python: Path, where: Path) -> Path:
    where.mkdir()
    run(python, "-m", "django", "startproject", "checksite", where)
    settings = where / "checksite" / "settings.py"
    text = settings.read_text()
    if "INSTALLED_APPS = [\n" not in text:
        raise CheckFailed(f"no INSTALLED_APPS list in {settings}")
    app = f'    "{PACKAGE}",\n'
    settings.write_text(text.replace("INSTALLED_APPS = [\n", "INSTALLED_APPS = [\n" + app, 1))
    return where


def read_lines(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def serve_and_request(python: Path, project: Path) -> None:
    server = subprocess.Popen(
        [str(python), "manage.py", "asgiserve", "--noreload", "127.0.0.1:0"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its workers in a group of their own, to check none is left
    )
    assert server.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(server.stdout, lines), daemon=True).start()
    output: list[str] = []
    try:
        url = wait_for_banner(server, lines, output)
        for path in ("", "static/admin/css/base.css"):
            with urllib.request.urlopen(url + path, timeout=30) as response:
                if response.status != 200:
                    raise CheckFailed(f"GET /{path} answered {response.status}")
        stop(server)
    except BaseException:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        while not lines.empty():
            output.append(lines.get())
        print("".join(output), file=sys.stderr)
        raise


def wait_for_banner(server: subprocess.Popen[str], lines: queue.Queue[str], out: list[str]) -> str:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            if server.poll() is not None:
                raise CheckFailed(f"the server exited {server.returncode} before serving") from None
            continue
        out.append(line)
        if match := BANNER.search(line):
            return match[1]
    raise CheckFailed(f"no banner within {START_TIMEOUT:g} s")


def stop(server: subprocess.Popen[str]) -> None:
    server.send_signal(signal.SIGINT)
    try:
        code = server.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"the server did not stop within {STOP_TIMEOUT:g} s of SIGINT") from None
    if code != 0:
        raise CheckFailed(f"the server exited {code} on SIGINT")
    deadline = time.monotonic() + STOP_TIMEOUT
    while group_alive(server.pid):
        if time.monotonic() > deadline:
            raise CheckFailed("processes of the server were left behind after it stopped")
        time.sleep(0.1)


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def main() -> int:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="check-package-") as tmp:
        work = Path(tmp)
        try:
            with step("python -m build, twine check"):
                source = clean_copy(work / "source")
                wheel, _sdist = build(source, work / "dist")
            with step(f"{wheel.name} holds the package"):
                check_wheel_contents(wheel, source)
            with step("the wheel installed in a fresh virtualenv"):
                python = install(wheel, work / "venv")
            with step("startproject, asgiserve --noreload, GET / and a static file"):
                serve_and_request(python, make_project(python, work / "project"))
        except CheckFailed as failure:
            print(f"check_package: FAILED: {failure}", file=sys.stderr)
            return 1
    print(f"check_package: all good in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
