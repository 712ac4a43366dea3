"""Serving over every backend: views, WebSockets, static files, the banner and the request log.

The checks that only observe a running server share one server per backend (``live``); the ones
that need other options or settings start their own.
"""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import django
import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.helpers.polling import wait_for
from tests.helpers.server import (
    BACKENDS,
    BANNER_URL,
    PROJECT_FILE_MARKERS,
    Server,
    copy_project,
    get_target,
    ipv6_loopback,
)

APP_CSS = "/static/demo/app.css"
APP_CSS_FILE = Path("demo/static/demo/app.css")
MESSAGE = "hello from testproject"
#: runserver's request log line: ``[22/Nov/2026 20:03:11] "GET /sync/ HTTP/1.1" 200 22``.
STAMP = r"\[\d{2}/[A-Z][a-z]{2}/\d{4} \d{2}:\d{2}:\d{2}\]"
#: With the reloader, what the request cost follows (see test_request_cost).
COST = r"( \(\d+ ms(, \d+ quer(y|ies)( in [\d.]+ ms)?)?\))?"
LOG_LINE = re.compile(rf'^{STAMP} "(GET|HEAD) (\S+) HTTP/1\.1" (\d{{3}}) (\d+){COST}$')
WS_LINE = re.compile(
    rf"^{STAMP} WebSocket (CONNECT|DISCONNECT|REJECT) (/ws/\S*) \[127\.0\.0\.1:\d+\]"
    r"( \(\d+\.\ds\))?$"
)
#: What the backends print on their own when left alone (lifecycle and access lines).
BACKEND_CHATTER = (
    "INFO:",
    "[INFO]",
    "Uvicorn running",
    "Started server process",
    "Waiting for application",
    "Application startup",
    "Running on",
    "Listening on",
    "Configuring endpoint",
)
TRAVERSALS = (
    "/static/../manage.py",
    "/static/../../manage.py",
    "/static/demo/../../../manage.py",
    "/static/demo/../../../testproject/settings.py",
    "/static/%2e%2e/%2e%2e/manage.py",
    "/static/%2e%2e%2f%2e%2e%2fmanage.py",
    "/static/demo/%2E%2E/%2E%2E/%2E%2E/testproject/settings.py",
    "/static/..%2f..%2ftestproject%2fsettings.py",
    "/static/%252e%252e/%252e%252e/manage.py",
    "/static/..\\..\\manage.py",
    "/static//etc/passwd",
)


@pytest.fixture(scope="module", params=BACKENDS)
def live(request, tmp_path_factory):
    """One server per backend, shared by the tests that only look at it."""
    project = copy_project(tmp_path_factory.mktemp(request.param) / "testproject")
    server = Server(
        project, ["--noreload", "--skip-checks", "--backend", request.param, "127.0.0.1:0"]
    )
    server.backend = request.param
    try:
        yield server.wait_serving()
    finally:
        server.kill()


def ws_url(server: Server, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def new_lines(server: Server, start: int) -> list[str]:
    return [line.rstrip("\n") for line in server.stderr.lines[start:]]


# -- one server per backend ---------------------------------------------------------------------


def test_sync_and_async_views(live):
    for path in ("/sync/", "/async/"):
        response = live.get(path)
        assert response.status_code == 200, path
        assert response.text == MESSAGE
        assert response.headers["content-type"] == "text/plain"


def test_websocket_round_trip(live):
    with connect(ws_url(live, "/ws/echo/"), open_timeout=10, close_timeout=10) as websocket:
        websocket.send("hello")
        assert websocket.recv(timeout=10) == "echo: hello"
        websocket.send("ünïcode ✓")
        assert websocket.recv(timeout=10) == "echo: ünïcode ✓"


def test_websocket_on_another_path_is_refused(live):
    with pytest.raises(InvalidStatus) as refused, connect(ws_url(live, "/ws/nope/")):
        pass
    assert refused.value.response.status_code == 403


def test_static_file_is_served(live):
    response = live.get(APP_CSS)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert response.content == (live.project / APP_CSS_FILE).read_bytes()
    assert int(response.headers["content-length"]) == len(response.content)
    assert "last-modified" in response.headers


def test_static_head_and_if_modified_since(live):
    size = (live.project / APP_CSS_FILE).stat().st_size
    head = httpx.head(live.url + APP_CSS, timeout=10)
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == size
    assert head.headers["content-type"].startswith("text/css")

    not_modified = live.get(APP_CSS, headers={"If-Modified-Since": head.headers["last-modified"]})
    assert not_modified.status_code == 304
    assert not_modified.content == b""

    modified = live.get(APP_CSS, headers={"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"})
    assert modified.status_code == 200
    assert len(modified.content) == size


def test_missing_static_file_is_404(live):
    assert live.get("/static/demo/missing.css").status_code == 404
    assert live.get("/static/demo/").status_code == 404


@pytest.mark.parametrize("target", TRAVERSALS)
def test_path_traversal_never_returns_a_project_file(live, target):
    start = len(live.stderr.lines)
    response = get_target(live, target)
    assert response.status_code in (400, 404), response.text[:300]
    for marker in PROJECT_FILE_MARKERS:
        assert marker not in response.text
    # Answered like any missing file: a log line, not an unhandled exception.
    wait_for(
        lambda: any(f"GET {target} HTTP/1.1" in line for line in new_lines(live, start)),
        what="the request's log line",
    )
    assert "Traceback" not in "\n".join(new_lines(live, start))


def test_banner(live):
    out = live.stdout.text
    assert live.port != 0
    assert re.search(r"^[A-Z][a-z]+ \d{2}, \d{4} - \d{2}:\d{2}:\d{2}$", out, re.M), out
    assert f"Django version {django.get_version()}, using settings 'testproject.settings'" in out
    assert f"ASGI/{live.backend} {version(live.backend)} " in out
    assert f"server at http://127.0.0.1:{live.port}/\n" in out
    assert "Quit the server with CONTROL-C.\n" in out
    # --noreload serves with a production server: runserver's warning would be wrong here.
    assert "development server" not in out
    # --skip-checks: no checks were run.
    assert "Performing system checks" not in out
    assert "System check identified" not in out


def test_request_log(live):
    start = len(live.stderr.lines)
    css_size = (live.project / APP_CSS_FILE).stat().st_size
    assert live.get("/sync/").status_code == 200
    assert live.get("/async/?x=1").status_code == 200
    assert live.get(APP_CSS).status_code == 200
    assert live.get("/static/demo/missing.css").status_code == 404
    with connect(ws_url(live, "/ws/echo/"), open_timeout=10, close_timeout=10) as websocket:
        websocket.send("hi")
        assert websocket.recv(timeout=10) == "echo: hi"
        client = f"[127.0.0.1:{websocket.local_address[1]}]"
    requests = ["/sync/", "/async/?x=1", APP_CSS, "/static/demo/missing.css"]

    def all_logged() -> bool:
        # A request's line is written once its response is over, which may be after the client
        # has read it and moved on: wait for every line, not only for the last request's.
        seen = new_lines(live, start)
        paths = {m[2] for m in map(LOG_LINE.match, seen) if m and m[1] == "GET"}
        return set(requests) <= paths and any(
            "WebSocket DISCONNECT" in line and client in line for line in seen
        )

    wait_for(all_logged, what="a log line for each request and the WebSocket DISCONNECT line")
    lines = new_lines(live, start)

    def logged(method: str, path: str) -> tuple[str, str]:
        for line in lines:
            match = LOG_LINE.match(line)
            if match and match[1] == method and match[2] == path:
                return match[3], match[4]
        pytest.fail(f"no log line for {method} {path} in:\n" + "\n".join(lines))

    assert logged("GET", "/sync/") == ("200", str(len(MESSAGE)))
    assert logged("GET", "/async/?x=1") == ("200", str(len(MESSAGE)))
    assert logged("GET", APP_CSS) == ("200", str(css_size))
    assert logged("GET", "/static/demo/missing.css")[0] == "404"
    ws_events = [m[1] for m in map(WS_LINE.match, lines) if m and client in m[0]]
    assert ws_events == ["CONNECT", "DISCONNECT"], lines

    # Every line about these requests is ours, in runserver's format; nothing from the backend.
    for line in lines:
        if "/sync/" in line or "/async/" in line or "/ws/echo/" in line or APP_CSS in line:
            assert LOG_LINE.match(line) or WS_LINE.match(line), line
    everything = live.output
    for chatter in BACKEND_CHATTER:
        assert chatter not in everything
    assert "lifespan" not in everything.lower()
    assert "Traceback" not in "\n".join(lines)


# -- servers of their own -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "args", "env", "served"),
    [
        pytest.param("daphne", ["--nostatic"], {}, False, id="nostatic"),
        pytest.param("hypercorn", [], {"ASGISERVE_DEMO_DEBUG": "0"}, False, id="debug-off"),
        pytest.param(
            "uvicorn", ["--insecure"], {"ASGISERVE_DEMO_DEBUG": "0"}, True, id="debug-off-insecure"
        ),
        pytest.param(
            "daphne",
            ["--insecure", "--nostatic"],
            {"ASGISERVE_DEMO_DEBUG": "0"},
            False,
            id="nostatic-wins-over-insecure",
        ),
    ],
)
def test_static_serving_follows_runserver(start, project, backend, args, env, served):
    server = start("--noreload", "--skip-checks", "--backend", backend, *args, env=env)
    server.wait_serving()
    response = server.get(APP_CSS)
    if served:
        assert response.status_code == 200
        assert response.content == (project / APP_CSS_FILE).read_bytes()
    else:
        assert response.status_code == 404
        assert response.content != (project / APP_CSS_FILE).read_bytes()
    # The rest of the site is served either way.
    assert server.get("/sync/").text == MESSAGE


def test_force_script_name_is_the_same_on_every_backend(start, project, backend):
    (project / "testproject" / "settings_prefix.py").write_text(
        'from .settings import *  # noqa: F403\n\nFORCE_SCRIPT_NAME = "/prefix"\n'
    )
    server = start(
        "--noreload", "--skip-checks", "--backend", backend,
        "--settings", "testproject.settings_prefix",
    )  # fmt: skip
    server.wait_serving("/prefix/sync/")
    data = server.get("/prefix/headers/").json()
    assert {key: data[key] for key in ("scheme", "path", "path_info", "script_name")} == {
        "scheme": "http",
        "path": "/prefix/headers/",
        "path_info": "/headers/",
        "script_name": "/prefix",
    }
    assert data["reverse_sync"] == "/prefix/sync/"
    assert data["remote_addr"] == "127.0.0.1"
    assert data["host"] == f"127.0.0.1:{server.port}"


def test_banner_for_all_interfaces_shows_0_0_0_0(start):
    # --nothreading is accepted for runserver compatibility (ASGI servers do not use it).
    server = start("--noreload", "--skip-checks", "--nothreading", addrport="0:0")
    server.wait_serving()
    assert server.port != 0
    assert f"server at http://0.0.0.0:{server.port}/" in server.stdout.text


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 on the loopback interface")
@pytest.mark.parametrize("args", [[], ["--ipv6"]], ids=["brackets", "brackets-and-flag"])
def test_ipv6_loopback(start, args):
    server = start("--noreload", "--skip-checks", *args, addrport="[::1]:0")

    def banner():
        if server.process.poll() is not None:
            pytest.fail(f"server exited with {server.process.returncode}:\n{server.output}")
        return BANNER_URL.search(server.stdout.text)

    match = wait_for(banner, what="the banner")
    assert match[2] == "[::1]"
    port = int(match[3])
    assert port != 0

    def answer():
        try:
            return httpx.get(f"http://[::1]:{port}/sync/", timeout=10)
        except httpx.HTTPError:
            return None

    response = wait_for(answer, what="a response over IPv6")
    assert response.status_code == 200
    assert response.text == MESSAGE


def test_development_warning_with_the_reloader(start):
    out = start("--skip-checks").wait_serving().stdout.text
    assert (
        "WARNING: This is a development server. Do not use it in a production setting. "
        "Use a production WSGI or ASGI server instead." in out
    )
    assert "https://docs.djangoproject.com/en/" in out


def test_development_warning_can_be_hidden(start):
    server = start("--skip-checks", env={"DJANGO_RUNSERVER_HIDE_WARNING": "true"})
    server.wait_serving()
    out = server.stdout.text
    assert "Quit the server with CONTROL-C." in out
    assert "WARNING" not in out
    assert "development server. Do not use it in a production setting" not in out


def test_static_served_when_staticfiles_is_named_by_its_app_config(start, project):
    (project / "testproject" / "settings_appconfig.py").write_text(
        "from .settings import *  # noqa: F403\n\n"
        "INSTALLED_APPS = [\n"
        '    "django.contrib.staticfiles.apps.StaticFilesConfig"\n'
        '    if app == "django.contrib.staticfiles"\n'
        "    else app\n"
        "    for app in INSTALLED_APPS  # noqa: F405\n"
        "]\n"
    )
    server = start("--noreload", "--skip-checks", "--settings", "testproject.settings_appconfig")
    server.wait_serving()
    response = server.get(APP_CSS)
    assert response.status_code == 200
    assert response.content == (project / APP_CSS_FILE).read_bytes()
