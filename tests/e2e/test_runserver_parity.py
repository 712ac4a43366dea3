"""A project made as a new user makes one (``startproject``, an app with sync views only,
``MEDIA_URL`` served by ``static()``, optionally whitenoise as its docs set it up) looks the same
through asgiserve as through runserver: the same headers on static and media files (runserver,
run on the same project, is the oracle), no Django warning about streaming, and no line about
sync-only middleware when no request pays for it.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.helpers.server import Server
from tests.helpers.startproject import MEDIA_FILE, STATIC_FILE, build

#: Headers whose value is the server's own, never runserver's: only their presence counts.
OWN_VALUES = {"date", "server"}
#: What runserver's WSGI server (wsgiref) adds to every response without a body, 304s included,
#: and RFC 9110 (8.6) forbids on a 304 (it must be the 200's length, if sent): left out, as by
#: every ASGI server.
WSGIREF_ONLY = {(304, "content-length")}
STREAMING_WARNING = "StreamingHttpResponse must consume"
SYNC_ONLY_LINE = "Sync-only middleware"
#: Each variant of the project: whether whitenoise serves its static files.
VARIANTS = {"plain": False, "whitenoise": True}
#: Per request: its status, headers (lower-cased names) and body length.
Observed = dict[str, tuple[int, dict[str, str], int]]


def fetches(path: str, last_modified: str) -> list[tuple[str, dict[str, str]]]:
    """Every request compared for a file: GET, HEAD, and GET if not modified since."""
    return [("GET", {}), ("HEAD", {}), ("GET", {"If-Modified-Since": last_modified})]


def observe(server: Server, path: str) -> Observed:
    """Status, headers (lower-cased names) and body length of each request of :func:`fetches`."""
    first = server.get(path)
    assert first.status_code == 200, first.text
    seen = {}
    for method, headers in fetches(path, first.headers["last-modified"]):
        response = httpx.request(method, server.url + path, headers=headers, timeout=10)
        named = {name.lower(): value for name, value in response.headers.items()}
        key = f"{method} {path} {' '.join(headers)}".strip()
        seen[key] = (response.status_code, named, len(response.content))
    return seen


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        name: build(tmp_path_factory.mktemp(name) / "site", whitenoise=whitenoise)
        for name, whitenoise in VARIANTS.items()
    }


@pytest.fixture(scope="module")
def oracle(projects: dict[str, Path]) -> dict[tuple[str, str], Observed]:
    """What runserver sends for each variant and file (Django's own runserver: asgiserve
    left out of the project)."""
    seen = {}
    for name, project in projects.items():
        server = Server(
            project, ["--noreload", "127.0.0.1:0"], env={"SITE_ASGISERVE": "0"}, command="runserver"
        )
        try:
            server.wait_serving("/hello/")
            for path in (STATIC_FILE, MEDIA_FILE):
                seen[name, path] = observe(server, path)
        finally:
            server.kill()
    return seen


def differences(expected: Observed, got: Observed) -> list[str]:
    found = []
    for request, (status, headers, length) in expected.items():
        got_status, got_headers, got_length = got[request]
        if (status, length) != (got_status, got_length):
            found.append(
                f"{request}: {got_status}, {got_length} bytes; runserver {status}, {length}"
            )
        for name in sorted(set(headers) | set(got_headers)):
            if (status, name) in WSGIREF_ONLY and name not in got_headers:
                continue
            if name not in got_headers:
                found.append(f"{request}: no {name} (runserver: {headers[name]!r})")
            elif name not in headers:
                found.append(f"{request}: {name} {got_headers[name]!r} (runserver: none)")
            elif name not in OWN_VALUES and headers[name] != got_headers[name]:
                found.append(
                    f"{request}: {name} {got_headers[name]!r}, runserver {headers[name]!r}"
                )
    return found


def serve_and_compare(server: Server, expected: Observed, path: str) -> None:
    got = observe(server, path)
    # The worker's lines come in order: once the last request is logged, any warning its
    # responses raised is in the output too.
    server.get("/hello/?last")
    server.wait_output("GET /hello/?last")
    assert not differences(expected, got), "\n".join(differences(expected, got))
    assert STREAMING_WARNING not in server.output, server.output
    assert SYNC_ONLY_LINE not in server.output, server.output
    assert "Traceback" not in server.output, server.output


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_static_files_as_runserver_sends_them(start, projects, oracle, backend, variant):
    """Served by asgiserve's static layer (plain) or by whitenoise's middleware, as under
    runserver with whitenoise's ``runserver_nostatic``; whitenoise's middleware is sync-only,
    and no request pays for it without an async view: no line about it."""
    server = start("--backend", backend, cwd=projects[variant]).wait_serving("/hello/")
    serve_and_compare(server, oracle[variant, STATIC_FILE], STATIC_FILE)


def test_media_files_as_runserver_sends_them(start, projects, oracle, backend):
    """Served by Django's static view, routed by ``static()`` in ``urls.py``."""
    server = start("--backend", backend, cwd=projects["plain"]).wait_serving("/hello/")
    serve_and_compare(server, oracle["plain", MEDIA_FILE], MEDIA_FILE)
