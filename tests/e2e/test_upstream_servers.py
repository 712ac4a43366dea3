"""A server release that changed what asgiserve relies on (``django_asgiserve/upstream/``): the
command refuses before serving, naming the installed version and the tested range, or serves
without the one feature the change takes away, said once as ``asgiserve.W030``.

Each change is simulated in every process the command starts: the upstream's source is renamed
as a release would rename it, or an attribute deleted (``tests/helpers/upstream_changes.py``).
Only the backends under test (``ASGISERVE_TEST_BACKENDS``) are run, so that the minimum-versions
job runs each backend's at its floors.
"""

from __future__ import annotations

import os
import signal
from importlib.metadata import version

import httpx
import pytest

from tests.helpers.commands import assert_fails_clearly, manage
from tests.helpers.polling import wait_for
from tests.helpers.server import TESTED_BACKENDS, wait_for_nothing_left
from tests.helpers.upstream_changes import changed_environ


def test_the_installed_releases_have_everything_asgiserve_relies_on(start, backend):
    """At the floors (the minimum-versions job) as at the newest: no probe finds a change."""
    server = start("--backend", backend, "-v", "2").wait_serving()
    assert "030)" not in server.output, server.output


# backend, upstream project (as the message names it), distribution, renames, deletions
REFUSALS = [
    (
        "uvicorn",
        "uvicorn",
        "uvicorn",
        {"uvicorn.server": [("capture_signals", "handle_signals")]},
        {},
    ),
    (
        "daphne",
        "daphne",
        "daphne",
        {
            "daphne.server": [
                ("from twisted.internet.endpoints import serverFromString", "import twisted"),
                ("ep = serverFromString(", "ep = twisted.internet.endpoints.serverFromString("),
            ]
        },
        {},
    ),
    (
        "daphne",
        "daphne",
        "daphne",
        {"daphne.server": [("listen_success", "on_listening")]},
        {},
    ),
    ("granian", "granian", "granian", {}, {"granian.server.embed": ["Server.serve"]}),
    ("granian", "granian", "granian", {}, {"granian._granian": ["SocketHolder"]}),
    (
        "granian",
        "granian",
        "granian",
        {
            "granian.server.common": [("_init_shared_socket", "_bind_listener")],
            "granian.server.embed": [("_init_shared_socket", "_bind_listener")],
        },
        {},
    ),
    ("gunicorn", "gunicorn", "gunicorn", {}, {"gunicorn.arbiter": ["Arbiter.WORKER_BOOT_ERROR"]}),
    (
        "gunicorn",
        "uvicorn-worker",
        "uvicorn-worker",
        {"uvicorn_worker._workers": [("_serve", "_serve_app")]},
        {},
    ),
]
REFUSAL_IDS = [
    "uvicorn-capture_signals",
    "daphne-serverFromString",
    "daphne-listen_success",
    "granian-embedded-serve",
    "granian-SocketHolder",
    "granian-_init_shared_socket",
    "gunicorn-Arbiter",
    "uvicorn_worker-_serve",
]


def under_test(cases: list, ids: list[str]) -> list:
    return [
        pytest.param(*case, id=case_id)
        for case, case_id in zip(cases, ids, strict=True)
        if case[0] in TESTED_BACKENDS
    ]


@pytest.mark.parametrize(
    ("backend", "upstream", "distribution", "renames", "deletions"),
    under_test(REFUSALS, REFUSAL_IDS),
)
def test_a_release_without_what_serving_needs_is_refused_before_serving(
    project, tmp_path, backend, upstream, distribution, renames, deletions
):
    env = changed_environ(tmp_path / "changed", renames, deletions)
    result = manage(project, "asgiserve", "--noreload", "--backend", backend, env=env)
    assert_fails_clearly(
        result,
        "SystemCheckError",
        "(asgiserve.E030)",
        f"{upstream} {version(distribution)} lacks",
        f"is tested with {upstream} ",
        f'pip install "{distribution}>=',
    )


# backend, renames, what the warning names
FALLBACKS = [
    ("uvicorn", {"uvicorn.server": [("self.servers", "self.listening_servers")]}, "Server.servers"),
    (
        "hypercorn",
        {
            "hypercorn.config": [
                (
                    "sock = socket.socket(fileno=int(bind[5:]))",
                    "sock = socket.socket(fileno=os.dup(int(bind[5:])))",
                )
            ]
        },
        "fd:// bind",
    ),
]


@pytest.mark.parametrize(
    ("backend", "renames", "named"),
    under_test(FALLBACKS, ["uvicorn-servers", "hypercorn-fd-reader"]),
)
def test_without_a_stop_in_two_steps_the_worker_still_serves_and_stops(
    start, tmp_path, backend, renames, named
):
    server = start(
        "--backend", backend, env=changed_environ(tmp_path / "changed", renames)
    ).wait_serving()
    assert server.stderr.text.count("(asgiserve.W030)") == 1, server.output
    assert named in server.stderr.text
    # A reload retires the old worker, and a stop the new one, the fallback's way: at once, so
    # that a request the old one accepted as it stopped may go unanswered (what W030 says).
    old_pid = server.get("/pid/").text

    def new_worker_answers() -> bool:
        response = server.try_get("/pid/")
        return response is not None and response.text != old_pid

    server.process.send_signal(signal.SIGHUP)
    wait_for(new_worker_answers, what="a new worker answering")
    os.kill(server.process.pid, signal.SIGTERM)
    assert server.wait_exit() == 0, server.output
    wait_for_nothing_left(server)
    assert "Traceback" not in server.output


TWISTED_RENAMES = {
    "twisted.web.http": [
        ("self._command", "self._verb"),
        ("self._path", "self._target"),
        ("self._version", "self._protocol"),
    ]
}
DAPHNE_FACTORY_RENAMES = {
    "daphne.server": [
        ("from .http_protocol import HTTPFactory", "from . import http_protocol"),
        ("HTTPFactory(self)", "http_protocol.HTTPFactory(self)"),
    ]
}


@pytest.mark.skipif("daphne" not in TESTED_BACKENDS, reason="daphne is not under test")
@pytest.mark.parametrize(
    ("renames", "named"),
    [
        pytest.param(TWISTED_RENAMES, "HTTPChannel._command", id="twisted-request-line"),
        pytest.param(DAPHNE_FACTORY_RENAMES, "daphne.server.HTTPFactory", id="daphne-factory"),
    ],
)
def test_without_streamed_bodies_daphne_reads_a_body_whole_and_serves_it(
    start, tmp_path, renames, named
):
    server = start(
        "--backend", "daphne", env=changed_environ(tmp_path / "changed", renames)
    ).wait_serving()
    body = bytes(range(256)) * 4096  # 1 MiB: streamed, when it can be
    response = httpx.post(f"{server.url}/upload/", content=body, timeout=30)
    assert response.status_code == 200
    assert response.json()["size"] == len(body)
    assert server.stderr.text.count("(asgiserve.W030)") == 1, server.output
    assert named in server.stderr.text
