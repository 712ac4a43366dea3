"""Shared plumbing for the benchmark scripts (standard library only).

It copies a Django project into a temporary directory, writes a settings overlay that lets each
benchmarked system run with the ``INSTALLED_APPS`` it needs, starts servers in their own process
groups, speaks plain HTTP/1.1 to them over fresh loopback connections and stops them for sure
(SIGINT to the group, then SIGKILL to the group and to any stray descendant), checking that the
port is free again afterwards.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PROJECT = REPO_ROOT / "testproject"
HOST = "127.0.0.1"

#: Name of the settings module written at the root of the copied project.
OVERLAY_MODULE = "asgiserve_bench_settings"

#: Which ``INSTALLED_APPS`` a system runs with (see :data:`OVERLAY_TEMPLATE`).
Variant = Literal["plain", "watchfiles", "daphne", "asgiserve", "asgiserve-cold"]

OVERLAY_TEMPLATE = '''"""Settings overlay written by django-asgiserve's benchmarks; do not edit.

ASGISERVE_BENCH_VARIANT picks the INSTALLED_APPS: "plain" (no django_asgiserve, so Django's own
runserver), "watchfiles" (plain + django_watchfiles), "daphne" (plain with daphne first) or
"asgiserve" (django_asgiserve first; "asgiserve-cold": with ASGISERVE["WARM_UP"] False).
ASGISERVE_BENCH_DEBUG ("0"/"1") overrides DEBUG if set.
ASGISERVE_BENCH_QUIET=1 silences the request log (django.server), as the CLIs run without
their access logs in the throughput benchmark.
"""

import os

from {base} import *  # noqa: F403

_VARIANT = os.environ.get("ASGISERVE_BENCH_VARIANT", "asgiserve")
_MANAGED = ("django_asgiserve", "daphne", "django_watchfiles")
INSTALLED_APPS = [
    app
    for app in INSTALLED_APPS  # noqa: F405
    if app.split(".")[0] not in _MANAGED
]
if _VARIANT in ("asgiserve", "asgiserve-cold"):
    INSTALLED_APPS.insert(0, "django_asgiserve")
if _VARIANT == "asgiserve-cold":  # no warm-up of new workers
    ASGISERVE = {{**globals().get("ASGISERVE", {{}}), "WARM_UP": False}}
elif _VARIANT == "daphne":
    INSTALLED_APPS.insert(0, "daphne")
elif _VARIANT == "watchfiles":
    INSTALLED_APPS.append("django_watchfiles")

ALLOWED_HOSTS = [*ALLOWED_HOSTS, "127.0.0.1", "localhost"]  # noqa: F405
if "ASGISERVE_BENCH_DEBUG" in os.environ:
    DEBUG = os.environ["ASGISERVE_BENCH_DEBUG"] == "1"
if os.environ.get("ASGISERVE_BENCH_QUIET") == "1":
    LOGGING = {{
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {{"django.server": {{"level": "WARNING"}}}},
    }}
'''

_COPY_IGNORE = shutil.ignore_patterns(
    "__pycache__",
    "*.pyc",
    ".git",
    "node_modules",
    "db.sqlite3",
    "db.sqlite3-journal",
)
#: Skipped only at the top of the project, where uploads and collected files usually go (an
#: app's ``fixtures/media``, say, is the project's own: its data commands copy from there).
_TOP_IGNORE = frozenset({"staticfiles", "media"})


def _copy_ignore(source: Path) -> Callable[[str, list[str]], set[str]]:
    def ignore(folder: str, names: list[str]) -> set[str]:
        ignored = set(_COPY_IGNORE(folder, names))
        if Path(folder) == source:
            ignored |= _TOP_IGNORE.intersection(names)
        return ignored

    return ignore


# --------------------------------------------------------------------------------------------
# Project preparation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectInfo:
    """What the benchmarks need to know about a (copied) Django project."""

    root: Path
    base_settings: str
    asgi_target: str
    root_urlconf: str
    installed_apps: tuple[str, ...]
    template_app_dirs: bool

    def module_path(self, dotted: str) -> Path:
        """File of a project module given its dotted name (a package's ``__init__.py``)."""
        candidate = self.root.joinpath(*dotted.split("."))
        if candidate.is_dir():
            return candidate / "__init__.py"
        return candidate.with_suffix(".py")


def copy_project(source: Path, destination: Path) -> Path:
    """Copy ``source`` (a directory holding ``manage.py``) to ``destination``, minus caches/DB."""
    if not (source / "manage.py").is_file():
        raise SystemExit(f"{source} has no manage.py: not a Django project directory")
    shutil.copytree(source, destination, ignore=_copy_ignore(source), symlinks=True)
    return destination


def settings_module_from_manage(root: Path) -> str:
    """The ``DJANGO_SETTINGS_MODULE`` default that ``manage.py`` sets."""
    text = (root / "manage.py").read_text()
    match = re.search(r"""DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']""", text)
    if match is None:
        raise SystemExit(f"cannot find DJANGO_SETTINGS_MODULE in {root / 'manage.py'}")
    return match.group(1)


def asgiserve_pythonpath(scratch: Path) -> str | None:
    """A ``PYTHONPATH`` entry that makes ``django_asgiserve`` importable, if it is not installed.

    Only a symlink to the package goes there, so the repository's own ``testproject`` directory
    never shadows the copied project's package of the same name.
    """
    if importlib.util.find_spec("django_asgiserve") is not None:
        return None
    package = REPO_ROOT / "django_asgiserve"
    if not package.is_dir():
        return None
    shim = scratch / "_asgiserve_path"
    shim.mkdir(exist_ok=True)
    link = shim / "django_asgiserve"
    if not link.exists():
        link.symlink_to(package, target_is_directory=True)
    return str(shim)


def base_env(extra_pythonpath: Sequence[str] = ()) -> dict[str, str]:
    """Environment for servers and helper commands: this interpreter's venv first on PATH."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env["DJANGO_SETTINGS_MODULE"] = OVERLAY_MODULE
    for key in ("PYTHONDONTWRITEBYTECODE", "VIRTUAL_ENV_PROMPT"):
        env.pop(key, None)
    paths = [p for p in (*extra_pythonpath, env.get("PYTHONPATH", "")) if p]
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    else:
        env.pop("PYTHONPATH", None)
    return env


def quiet_env(scratch: Path) -> dict[str, str]:
    """:func:`base_env` for a server measured with DEBUG off and its request log silenced."""
    shim = asgiserve_pythonpath(scratch)
    env = base_env([shim] if shim else [])
    env.update(ASGISERVE_DEMO_DEBUG="0", ASGISERVE_BENCH_DEBUG="0", ASGISERVE_BENCH_QUIET="1")
    return env


def prepare_project(root: Path, env: Mapping[str, str], *, migrate: bool = True) -> ProjectInfo:
    """Write the settings overlay into ``root``, migrate its database and describe the project."""
    base = settings_module_from_manage(root)
    (root / f"{OVERLAY_MODULE}.py").write_text(OVERLAY_TEMPLATE.format(base=base))
    probe_env = {**env, "ASGISERVE_BENCH_VARIANT": "plain"}
    script = (
        "import json\n"
        "from django.conf import settings\n"
        "print(json.dumps({\n"
        "    'asgi': getattr(settings, 'ASGI_APPLICATION', None),\n"
        "    'urls': settings.ROOT_URLCONF,\n"
        "    'apps': list(settings.INSTALLED_APPS),\n"
        "    'app_dirs': any(t.get('APP_DIRS') for t in settings.TEMPLATES),\n"
        "}))\n"
    )
    out = run_checked([sys.executable, "-c", script], cwd=root, env=probe_env)
    data = json.loads(out.strip().splitlines()[-1])
    asgi_target = _asgi_target(root, base, data["asgi"])
    if migrate:
        run_checked(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=root,
            env=probe_env,
        )
    return ProjectInfo(
        root=root,
        base_settings=base,
        asgi_target=asgi_target,
        root_urlconf=data["urls"],
        installed_apps=tuple(data["apps"]),
        template_app_dirs=bool(data["app_dirs"]),
    )


def _asgi_target(root: Path, base_settings: str, asgi_application: str | None) -> str:
    """``module:attribute`` for ASGI server CLIs; writes a stock ``asgi.py`` if there is none."""
    if asgi_application:
        module, _, attribute = asgi_application.rpartition(".")
        return f"{module}:{attribute}"
    package = base_settings.split(".")[0]
    asgi_py = root / package / "asgi.py"
    if not asgi_py.exists():
        asgi_py.write_text(
            "import os\n\n"
            "from django.core.asgi import get_asgi_application\n\n"
            f'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "{base_settings}")\n\n'
            "application = get_asgi_application()\n"
        )
    return f"{package}.asgi:application"


def run_checked(cmd: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> str:
    """Run a helper command to completion (5 minutes at most); exit with its output on failure."""
    proc = subprocess.run(
        list(cmd),
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"command failed: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def console_script(name: str) -> list[str]:
    """Command prefix for a console script installed next to this interpreter."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return [str(candidate)]
    found = shutil.which(name)
    if found:
        return [found]
    return [sys.executable, "-m", name]


def module_available(name: str) -> bool:
    """Whether ``name`` can be imported by this interpreter."""
    return importlib.util.find_spec(name) is not None


# --------------------------------------------------------------------------------------------
# Ports and HTTP
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True when nothing accepts connections on ``HOST:port`` and it can be bound again."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect((HOST, port))
        except OSError:
            pass
        else:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


Outcome = Literal["ok", "refused", "error"]


@dataclass(frozen=True)
class Probe:
    """Result of one GET over a fresh connection."""

    outcome: Outcome
    status: int = 0
    body: str = ""
    error: str = ""


def get(port: int, path: str, timeout: float) -> Probe:
    """GET ``path`` on a brand-new connection (``Connection: close``) and classify the result."""
    conn = http.client.HTTPConnection(HOST, port, timeout=max(timeout, 0.05))
    try:
        conn.request("GET", path, headers={"Connection": "close", "Host": f"{HOST}:{port}"})
        response = conn.getresponse()
        body = response.read()
        return Probe("ok", response.status, body.decode("utf-8", "replace"))
    except ConnectionRefusedError:
        return Probe("refused", error="connection refused")
    except (OSError, http.client.HTTPException) as exc:
        return Probe("error", error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# Server processes
# --------------------------------------------------------------------------------------------

_RUNNING: list[Server] = []


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """``(ppid, start time)`` of a process from /proc; None if it is gone or /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces: the other fields come after its ')'.
    fields = stat.rpartition(")")[2].split()
    if len(fields) < 20:
        return None
    return int(fields[1]), int(fields[19])


def descendants(pid: int) -> dict[int, int]:
    """Every living descendant of ``pid`` mapped to its start time (Linux; empty elsewhere)."""
    proc = Path("/proc")
    if not proc.is_dir():
        return {}
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None:
                children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found: dict[int, int] = {}
    stack = [pid]
    while stack:
        for child, started in children.get(stack.pop(), []):
            found[child] = started
            stack.append(child)
    return found


#: With :func:`pin`: ``taskset`` prefixes for the servers (CPU 1) and the load generator (CPU 0).
SERVER_CPU: list[str] = []
LOAD_CPU: list[str] = []


def pin() -> None:
    """Put every server started from now on CPU 1 and the load generator on CPU 0.

    On a 2-core machine they otherwise compete for both cores, and a server's threads (its
    event loop and its sync pool) hand the GIL from core to core: pinned, the server sees one
    core of its own, as behind a real network, and rounds differ far less.
    """
    if not shutil.which("taskset") or len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("--pin needs taskset and 2 CPUs")
    SERVER_CPU[:] = ["taskset", "-c", "1"]
    LOAD_CPU[:] = ["taskset", "-c", "0"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its living descendants (Linux).

    A figure robust to a busy machine where requests per second are not: divided by the
    requests served in a window, it is the CPU each request cost the server.
    """
    ticks = 0
    for each in (pid, *descendants(pid)):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Server:
    """One server process started in its own process group, its output going to a log file."""

    name: str
    cmd: list[str]
    cwd: Path
    env: dict[str, str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    port_freed: bool | None = None
    _known: dict[int, int] = field(default_factory=dict)

    def start(self) -> None:
        """Spawn the server (``started_at`` is taken just before the spawn)."""
        with self.log_path.open("wb") as log:
            log.write(f"$ {' '.join(self.cmd)}\n".encode())
            log.flush()
            self.started_at = time.perf_counter()
            self.proc = subprocess.Popen(
                self.cmd,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _RUNNING.append(self)

    def alive(self) -> bool:
        """Whether the process we spawned is still running."""
        return self.proc is not None and self.proc.poll() is None

    def remember_descendants(self) -> None:
        """Record current descendants so that strays can be killed even after re-parenting."""
        if self.proc is not None and self.proc.poll() is None:
            self._known.update(descendants(self.proc.pid))

    def wait_ready(self, path: str, timeout: float, interval: float = 0.01) -> float | None:
        """Seconds from spawn to the first 200 on ``path``; None if it died or timed out."""
        deadline = self.started_at + timeout
        while time.perf_counter() < deadline:
            if not self.alive():
                return None
            probe = get(self.port, path, timeout=min(2.0, deadline - time.perf_counter()))
            if probe.outcome == "ok" and probe.status == 200:
                elapsed = time.perf_counter() - self.started_at
                self.remember_descendants()
                return elapsed
            time.sleep(interval)
        return None

    def log_tail(self, lines: int = 15) -> str:
        """Last lines of the server's output, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 5.0) -> None:
        """SIGINT the process group, then SIGKILL it (and stray descendants); check the port."""
        if self.proc is None:
            return
        self.remember_descendants()
        pgid = self.proc.pid  # start_new_session: the leader's PID is the group ID
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGINT)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self.proc.poll()
            if self.proc.returncode is not None and not _group_alive(pgid):
                break
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        for pid, started in self._known.items():
            stat = _proc_stat(pid)
            if stat is not None and stat[1] == started:  # the same process, not a reused PID
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        deadline = time.monotonic() + 5
        while not port_is_free(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.port_freed = port_is_free(self.port)
        if not self.port_freed:
            print(
                f"warning: port {self.port} still busy after stopping {self.name}", file=sys.stderr
            )
        if self in _RUNNING:
            _RUNNING.remove(self)
        self.proc = None


def stop_all() -> None:
    """Stop every server still running (registered with :mod:`atexit`)."""
    for server in list(_RUNNING):
        server.stop(grace=2.0)


def _raise_interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def install_cleanup() -> None:
    """Make SIGINT, SIGTERM and SIGHUP stop the run cleanly; stop all servers at exit.

    SIGINT gets Python's handler even where a shell started us with it ignored (a background
    job); SIGHUP is left alone when ignored (``nohup``).
    """
    atexit.register(stop_all)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, _raise_interrupt)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    """Start ``server`` and stop it on leaving the block, whatever happens inside."""
    try:
        server.start()
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def machine_load() -> str:
    """CPU count and load averages, to judge how quiet the machine was during a run."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return f"{os.cpu_count()} CPUs"
    return f"{os.cpu_count()} CPUs, load average {one:.2f} (1 min) {five:.2f} (5 min) at the end"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with columns padded for reading in a terminal too."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), separator, *(line(r) for r in rows)])
