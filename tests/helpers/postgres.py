"""A private PostgreSQL cluster in a temporary directory, on a free loopback port, for one test
session: Debian's ``postgresql`` binaries (``/usr/lib/postgresql/VERSION/bin``), trust
authentication on 127.0.0.1, no durability (a test cluster).

``initdb`` refuses to run as root: as root, every PostgreSQL program runs as the ``postgres``
user Debian's package creates (``subprocess``'s ``user=``), and the directory is handed to it.
:func:`cluster` raises ``LookupError`` when PostgreSQL is not installed; nothing else is a
reason to skip.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.helpers.redis import free_port

if TYPE_CHECKING:
    import psycopg

#: Where Debian installs each major version's programs.
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
#: Seconds ``pg_ctl`` may take to start, stop or restart; generous for a busy CI machine.
CTL_DEADLINE = 60
#: What a test cluster needs: no durability.
SERVER_SETTINGS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
)
#: Enough for a few servers' request threads.
MAX_CONNECTIONS = 300


def binaries() -> Path:
    """The newest installed major version's ``bin`` directory."""
    found = sorted(
        DEBIAN_BINARIES.glob("*/bin/initdb"), key=lambda path: int(path.parent.parent.name)
    )
    if not found:
        raise LookupError(
            "PostgreSQL is not installed (Debian: apt-get install postgresql): "
            f"no {DEBIAN_BINARIES}/*/bin/initdb"
        )
    return found[-1].parent


def unprivileged_user() -> str | None:
    """The user PostgreSQL's programs run as: ``postgres`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise LookupError(
            "running as root without a 'postgres' user (Debian's postgresql package creates it)"
        ) from None
    return "postgres"


@dataclass
class Cluster:
    """A running cluster: how to reach it, restart it and make databases in it."""

    bin: Path
    data: Path
    log: Path
    port: int
    user: str | None
    max_connections: int = MAX_CONNECTIONS
    host: str = "127.0.0.1"
    superuser: str = "postgres"

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), *args],
            user=self.user,
            capture_output=True,
            text=True,
            timeout=CTL_DEADLINE,
        )

    def start(self) -> bool:
        options = (
            f"-p {self.port} -k {self.data.parent} {SERVER_SETTINGS}"
            f" -c max_connections={self.max_connections}"
        )
        return self.ctl("-w", "-t", str(CTL_DEADLINE), "-o", options, "start").returncode == 0

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut, the cluster is back once it
        returns."""
        result = self.ctl("-w", "-t", str(CTL_DEADLINE), "-m", "fast", "restart")
        assert result.returncode == 0, result.stdout + result.stderr + self.log.read_text()

    def stop(self) -> None:
        self.ctl("-w", "-t", str(CTL_DEADLINE), "-m", "immediate", "stop")

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        import psycopg  # the test extra's driver; only the tests that start a cluster need it

        return psycopg.connect(
            host=self.host, port=self.port, user=self.superuser, dbname=dbname, autocommit=True
        )

    def create_database(self, name: str) -> str:
        with self.connect() as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return name

    def backends(self, dbname: str) -> list[int]:
        """The pids of the server processes connected to ``dbname`` (from ``pg_stat_activity``;
        not this query's own, which is made to another database)."""
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s ORDER BY pid", (dbname,)
            ).fetchall()
        return [int(row[0]) for row in rows]

    def django_settings(self, name: str, **options: object) -> dict[str, object]:
        """A ``DATABASES`` entry for database ``name`` with ``options`` (``CONN_MAX_AGE``...)."""
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": self.superuser,
            "HOST": self.host,
            "PORT": str(self.port),
            **options,
        }


@contextlib.contextmanager
def cluster(max_connections: int = MAX_CONNECTIONS) -> Iterator[Cluster]:
    """Run a fresh cluster until the block ends (stopped, its directory removed).

    Raises ``LookupError`` when PostgreSQL is not installed.
    """
    bin_dir = binaries()
    user = unprivileged_user()
    with tempfile.TemporaryDirectory(prefix="asgiserve-pg-") as workdir:
        root = Path(workdir)
        if user is not None:
            shutil.chown(root, user)
        data = root / "data"
        subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "--no-sync", "-E", "UTF8", "--locale=C"],
            user=user,
            check=True,
            capture_output=True,
            timeout=CTL_DEADLINE,
        )  # fmt: skip
        # A port found free can be taken before the cluster binds it: try a few.
        for _attempt in range(5):
            running = Cluster(
                bin_dir, data, root / "server.log", free_port(), user, max_connections
            )
            if running.start():
                break
        else:
            raise RuntimeError(f"PostgreSQL did not start:\n{(root / 'server.log').read_text()}")
        try:
            yield running
        finally:
            running.stop()
