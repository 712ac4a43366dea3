"""A simulated fleet: hosts in network namespaces behind a real nginx, sharing a real Redis.

``fleet_network`` (one per module) makes the namespaces (``lb`` with a bridge, ``h1``, ``h2``
joined to it, 10.203.0.0/24), and runs ``redis-server`` and nginx in ``lb``; nginx's site is
``docs/nginx-fleet.conf``, the file the deployment guide shows, with the hosts' addresses put in
its upstream. ``fleet`` (one per test) starts ``manage.py asgiserve --noreload --workers 2``
on each host, from a copy of the test project each, with the backend ``ASGISERVE_FLEET_BACKEND``
names (uvicorn by default); ``backend_fleet`` does the same once per other backend. Everything is
stopped and every namespace deleted afterwards, also when a test fails. Tests skip when
namespaces cannot be made (not root, no iproute2, refused) or nginx or redis-server is missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import (
    DEADLINE,
    REPO,
    TESTPROJECT,
    Output,
    Server,
    child_environ,
    wait_for,
)
from tests.helpers import figures as figures_summary
from tests.helpers.netns import NetnsUnavailable, Network, delete_stale, entered
from tests.helpers.server import TESTED_BACKENDS

NGINX_SITE = REPO / "docs" / "nginx-fleet.conf"
HOSTS = ("h1", "h2")
#: Namespaces are named ``asfleet<pid of the test run>-<lb|h1|h2>``.
NAMESPACE_PREFIX = "asfleet"
HOST_PORT = 8000
REDIS_PORT = 6379
#: Extra asgiserve options for every host: the drain delay lets in-flight keep-alive
#: connections end (responses say Connection: close) before the stop.
HOST_OPTIONS: tuple[str, ...] = ("--drain-delay", "2", "--health-path", "/healthz")
#: The backend every host of ``fleet`` runs.
FLEET_BACKEND = os.environ.get("ASGISERVE_FLEET_BACKEND", "uvicorn")
UPSTREAM_SERVER = re.compile(r"^(\s*)server \S+:\d+(.*;)$", re.MULTILINE)


def nginx_site(addresses: list[str]) -> str:
    """The guide's nginx file with one upstream ``server`` line per host, same options."""
    template = NGINX_SITE.read_text()
    lines = list(UPSTREAM_SERVER.finditer(template))
    assert lines, f"{NGINX_SITE} has no upstream server lines"
    indent, options = lines[0].group(1), lines[0].group(2)
    servers = "\n".join(f"{indent}server {address}:{HOST_PORT}{options}" for address in addresses)
    return template[: lines[0].start()] + servers + template[lines[-1].end() :]


def nginx_main(workdir: Path) -> str:
    temp = "\n".join(
        f"    {kind}_temp_path {workdir / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""user root;
worker_processes 1;
pid {workdir / "nginx.pid"};
error_log {workdir / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp}
    include {workdir / "site.conf"};
}}
"""


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a child started in its own session, and whatever it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def redis_answers(address: str) -> bool:
    try:
        with socket.create_connection((address, REDIS_PORT), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class FleetNetwork:
    """The namespaces, Redis and nginx: what stays up while hosts come and go."""

    def __init__(self, network: Network, workdir: Path) -> None:
        self.network = network
        self.workdir = workdir
        self.lb = network.lb
        self.balancer = f"http://{network.lb_address}"
        self.redis_url = f"redis://{network.lb_address}:{REDIS_PORT}/0"
        self.children: list[subprocess.Popen[bytes]] = []

    def spawn(self, *argv: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            self.network.command("lb", *argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.children.append(process)
        return process

    def start_redis(self, executable: str) -> None:
        redis = self.spawn(
            executable, "--bind", self.network.lb_address, "--port", str(REDIS_PORT),
            "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
            # Other hosts connect: its own namespace is all that can reach it.
            "--protected-mode", "no",
        )  # fmt: skip
        with entered(self.lb):
            wait_for(
                lambda: redis.poll() is None and redis_answers(self.network.lb_address),
                what="redis-server",
            )

    def start_nginx(self, executable: str) -> None:
        (self.workdir / "site.conf").write_text(nginx_site(list(self.network.hosts.values())))
        config = self.workdir / "nginx.conf"
        config.write_text(nginx_main(self.workdir))
        nginx = self.spawn(executable, "-c", str(config), "-g", "daemon off;")

        def listening() -> bool:
            if nginx.poll() is not None:
                log = "\n".join(self.nginx_log())
                pytest.fail(f"nginx exited with {nginx.returncode}:\n{log}")
            try:
                with socket.create_connection((self.network.lb_address, 80), timeout=1):
                    return True
            except OSError:
                return False

        with entered(self.lb):
            wait_for(listening, what="nginx listening")

    def nginx_log(self) -> list[str]:
        """The lines of nginx's error log so far."""
        return (self.workdir / "error.log").read_text(errors="replace").splitlines()

    def nginx_errors(self, since: int = 0) -> list[str]:
        """nginx's error log from line ``since`` on, minus the refusals every restart causes."""
        return [line for line in self.nginx_log()[since:] if "connect() failed" not in line]

    def close(self) -> None:
        for process in reversed(self.children):
            stop(process)
        self.network.close()


@pytest.fixture(scope="module")
def fleet_network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FleetNetwork]:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    redis = shutil.which("redis-server")
    if nginx is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx)")
    if redis is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    delete_stale(NAMESPACE_PREFIX)
    network = Network(f"{NAMESPACE_PREFIX}{os.getpid()}")
    fleet = FleetNetwork(network, tmp_path_factory.mktemp("fleet"))
    try:
        try:
            network.create_hub()
        except NetnsUnavailable as error:
            pytest.skip(f"cannot simulate hosts with network namespaces: {error}")
        for host in HOSTS:
            network.add_host(host)
        fleet.start_redis(redis)
        fleet.start_nginx(nginx)
        yield fleet
    finally:
        fleet.close()


class Host(Server):
    """``manage.py asgiserve`` on a simulated host (inside its namespace, same pid)."""

    def __init__(
        self, network: Network, name: str, project: Path, redis_url: str, backend: str
    ) -> None:
        address = network.hosts[name]
        allowed = ",".join([network.lb_address, *network.hosts.values()])
        env = {
            "ASGISERVE_DEMO_HOST": name,
            "ASGISERVE_DEMO_DEBUG": "0",
            "ASGISERVE_DEMO_LOG_ERRORS": "1",
            "ASGISERVE_DEMO_CHANNEL_LAYER": redis_url,
            "DJANGO_ALLOWED_HOSTS": allowed,
        }
        argv = [
            sys.executable, "manage.py", "asgiserve", "--noreload", "--backend", backend,
            "--workers", "2",
            "--proxy-headers", "--forwarded-allow-ips", network.lb_address, *HOST_OPTIONS,
            f"0:{HOST_PORT}",
        ]  # fmt: skip
        self.name = name
        self.backend = backend
        self.project = project
        self.namespace = network.lb
        self.address = address
        self.process = subprocess.Popen(
            network.command(name, *argv),
            cwd=project,
            env=child_environ(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.stdout = Output(self.process.stdout)
        self.stderr = Output(self.process.stderr)
        self.port = HOST_PORT
        self.scheme = "http"
        self.verify = True

    @property
    def url(self) -> str:
        return f"http://{self.address}:{HOST_PORT}"

    def get(self, path: str, **kwargs) -> httpx.Response:
        # From the load balancer's namespace, on a new connection (so any worker may answer).
        with entered(self.namespace):
            return httpx.get(self.url + path, timeout=10, **kwargs)

    def worker(self) -> int | None:
        """The pid of the worker answering a fresh connection, None if none answers."""
        if self.process.poll() is not None:
            pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.output}")
        response = self.try_get("/host/")
        if response is None or response.status_code != 200:
            return None
        answer = response.json()
        assert answer["host"] == self.name, answer
        return int(answer["pid"])

    def wait_ready(self) -> Host:
        wait_for(self.worker, what=f"{self.name} serving")
        return self

    def workers(self, connections: int = 24) -> set[int]:
        """The workers seen answering ``connections`` fresh connections."""
        return {pid for pid in (self.worker() for _ in range(connections)) if pid is not None}


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Fleet:
    """The hosts of one test, on the module's network."""

    def __init__(self, network: FleetNetwork, workdir: Path, backend: str) -> None:
        self.network = network
        self.workdir = workdir
        self.backend = backend
        self.lb = network.lb
        self.balancer = network.balancer
        self.lb_address = network.network.lb_address
        self.hosts: dict[str, Host] = {}
        self.retired: list[Host] = []

    def start(self, name: str) -> Host:
        project = self.workdir / name / "testproject"
        if not project.exists():
            shutil.copytree(
                TESTPROJECT,
                project,
                ignore=shutil.ignore_patterns("__pycache__", "db.sqlite3", "media", "staticfiles"),
            )
        if name in self.hosts:
            self.retired.append(self.hosts[name])
        host = Host(self.network.network, name, project, self.network.redis_url, self.backend)
        self.hosts[name] = host
        return host

    def close(self) -> None:
        for host in [*self.hosts.values(), *self.retired]:
            host.kill()


@contextlib.contextmanager
def running_fleet(network: FleetNetwork, workdir: Path, backend: str) -> Iterator[Fleet]:
    """Every host serving with ``backend``; all of them killed afterwards."""
    hosts = Fleet(network, workdir, backend)
    try:
        for name in HOSTS:
            hosts.start(name)
        for host in hosts.hosts.values():
            host.wait_ready()
        yield hosts
    finally:
        hosts.close()


@pytest.fixture
def fleet(fleet_network: FleetNetwork, tmp_path: Path) -> Iterator[Fleet]:
    with running_fleet(fleet_network, tmp_path, FLEET_BACKEND) as hosts:
        yield hosts


@pytest.fixture(params=[backend for backend in TESTED_BACKENDS if backend != FLEET_BACKEND])
def backend_fleet(
    request: pytest.FixtureRequest, fleet_network: FleetNetwork, tmp_path: Path
) -> Iterator[Fleet]:
    with running_fleet(fleet_network, tmp_path, request.param) as hosts:
        yield hosts


@pytest.fixture
def record(request: pytest.FixtureRequest):
    """``record(figures)``: print a scenario's figures now and again at the end of the run."""

    def recorder(figures: dict[str, object]) -> None:
        figures_summary.record(request.node, "fleet figures", figures)
        print(f"\n{request.node.name}: {figures}")

    return recorder


__all__ = ["DEADLINE", "FLEET_BACKEND", "Fleet", "Host", "alive"]
