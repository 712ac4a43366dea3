"""Django's database connection life cycle on every path, against a real PostgreSQL.

As under ``WSGIHandler``, every thread that runs a request's sync code (the view, a sync
streaming body, a ``FileResponse``, the ``sync_to_async`` calls of an async view or an async
streaming body) is the request's thread, where ``request_started`` and ``request_finished`` (so
``close_old_connections``) run: with ``CONN_MAX_AGE = 0`` no connection outlives its request, with
60 each serving thread keeps one connection, and after the database restarts every request is
whole again (a dead connection kept forever without health checks fails one request, as under
WSGI). Each server (``--workers 2``) runs every check; the same checks pass against runserver
and Django's own ASGI handler (the oracles), so they can fail only on asgiserve's side.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.helpers import db_project
from tests.helpers.db_answers import (
    Answer,
    SignalLog,
    connections_by_thread,
    mix,
    outside_the_request_thread,
)
from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.postgres import Cluster
from tests.helpers.server import Server

#: Django's warning when its ASGI handler reads a whole sync iterator into a list.
CONSUME_WARNING = "StreamingHttpResponse must consume synchronous iterators"
#: Requests to every view, per alias and round.
EACH = 4
ROUNDS = 2


def failures(answers: list[Answer]) -> list[str]:
    return [answer.describe() for answer in answers if not answer.whole]


def check_the_request_thread(project: Path, answers: list[Answer]) -> None:
    """Each whole answer's queries and signals ran in one thread."""
    wait_for(lambda: SignalLog.read(project).complete(), what="request_finished of every request")
    wrong = outside_the_request_thread(answers, SignalLog.read(project))
    assert not wrong, "\n".join(wrong[:10])


def check_connections(
    client: httpx.Client, server: Server, databases: db_project.Databases
) -> None:
    """A mix of the views on each alias: connections end with their request (``default``),
    or one per serving thread is kept and reused (``kept``, ``forever``)."""
    answers: list[Answer] = []
    for _round in range(ROUNDS):
        for alias in db_project.ALIASES:
            answers += mix(client, server.url, alias, each=EACH)
    assert not failures(answers), "\n".join(failures(answers)[:10]) + server.output[-3000:]
    check_the_request_thread(server.project, answers)

    wait_for(lambda: not databases.connections("default"),
             what="no connection left open with CONN_MAX_AGE = 0")  # fmt: skip
    for alias in ("kept", "forever"):
        used = connections_by_thread(a for a in answers if a.alias == alias)
        reopened = {thread: pids for thread, pids in used.items() if len(pids) > 1}
        assert not reopened, f"{alias}: threads that opened more than one connection {reopened}"
        seen = set().union(*used.values())
        open_now = set(databases.connections(alias))
        assert open_now <= seen, f"{alias}: connections no request reported {open_now - seen}"
        assert len(open_now) <= len(used)


def check_database_restart(
    client: httpx.Client, server: Server, databases: db_project.Databases
) -> None:
    """``pg_ctl restart -m fast``, then each view on each alias: whole answers, but for one per
    dead connection kept forever without health checks (``forever``), as under WSGI."""
    stale = len(databases.connections("forever"))
    databases.cluster.restart()
    for alias in db_project.ALIASES:
        # A stream that fails once started is cut short, and daphne leaves that connection open
        # (its 500 cannot be sent after the headers): the dead connections kept forever are
        # seen failing complete responses, whose 500 every server sends.
        views = ("sync", "async") if alias == "forever" else db_project.VIEWS_PATHS
        answers = mix(client, server.url, alias, each=EACH, concurrency=4, views=views)
        failed = failures(answers)
        allowed = stale if alias == "forever" else 0
        assert len(failed) <= allowed, "\n".join(failed[:10]) + server.output[-3000:]
        check_the_request_thread(server.project, answers)
    wait_for(lambda: not databases.connections("default"),
             what="no connection left open with CONN_MAX_AGE = 0")  # fmt: skip


def check_everything(server: Server, databases: db_project.Databases) -> None:
    with httpx.Client(timeout=DEADLINE) as client:
        check_connections(client, server, databases)
        media = client.get(f"{server.url}/media/{db_project.MEDIA_FILE}")
        assert media.status_code == 200 and media.text == db_project.MEDIA_TEXT
        check_database_restart(client, server, databases)


def test_every_path_keeps_djangos_connection_life_cycle(
    project: Path, start, backend: str, postgres: Cluster
) -> None:
    databases = db_project.install(project, postgres, f"fast_{backend}")
    server = start("--noreload", "--backend", backend, "--workers", "2").wait_serving()
    check_everything(server, databases)
    # Sync bodies are iterated in the request's thread, not read whole into a list.
    assert CONSUME_WARNING not in server.output


@pytest.mark.parametrize("oracle", ["runserver", "django-handler"])
def test_the_oracles_pass_the_same_checks(
    project: Path, start, postgres: Cluster, oracle: str
) -> None:
    databases = db_project.install(
        project,
        postgres,
        oracle.replace("-", "_"),
        fast=oracle != "django-handler",
        runserver=oracle == "runserver",
    )
    if oracle == "runserver":
        with socket.socket() as probe:  # Django's runserver before 5.2 printed port 0 as given
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = start("--noreload", command="runserver", addrport=f"127.0.0.1:{port}")
    else:
        server = start("--noreload", "--backend", "uvicorn", "--workers", "2")
    check_everything(server.wait_serving(), databases)
