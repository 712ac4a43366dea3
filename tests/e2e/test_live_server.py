"""The tests' live ASGI server: a real project's pytest (also under xdist) and ``manage.py test``
run in a subprocess, against the project's in-memory SQLite test database.

The project's tests create rows and read them back through a sync view and an async (async ORM)
view, check that every test starts with an empty table, talk to a WebSocket route of
``ASGI_APPLICATION`` and fetch a static file. Here, only the runner's exit code and summary line
are asserted, and what the project's tests wrote down about the servers they used.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from tests.helpers.browser import CHROMIUM_MODULE
from tests.helpers.server import child_environ

IN_THREAD_BACKENDS = ("uvicorn", "hypercorn", "granian")
RUN_TIMEOUT = 300

NOTES_VIEWS = """
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render

from demo.models import Note


def board(request):
    return render(request, "demo/board.html", {"notes": Note.objects.order_by("text")})


def notes(request):
    texts = sorted(Note.objects.values_list("text", flat=True))
    return JsonResponse({"notes": texts, "database": str(connection.settings_dict["NAME"])})


async def async_notes(request):
    texts = sorted([note.text async for note in Note.objects.all()])
    return JsonResponse({"notes": texts, "database": str(connection.settings_dict["NAME"])})
"""

LIVE_URLS = """
from django.urls import path

from demo import live_views
from testproject.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("notes/", live_views.notes),
    path("async-notes/", live_views.async_notes),
    path("board/", live_views.board),
    *project_urlpatterns,
]
"""

LIVE_SETTINGS = """
import os

from testproject.settings import *  # noqa: F403

ROOT_URLCONF = "testproject.live_urls"
if os.environ.get("LIVE_TEST_DATABASE_FILE"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["LIVE_TEST_DATABASE_FILE"]}  # noqa: F405
ASGISERVE = {
    "BACKEND": os.environ.get("ASGISERVE_BACKEND", "auto"),
    "TEST_BACKEND": os.environ.get("ASGISERVE_TEST_BACKEND", "auto"),
}
"""

#: What both flavours check, written down for the outer test: which server served which test.
RECORD = '''
import contextlib
import json
import os
import socket
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from django.db import connection
from websockets.sync.client import connect

APP_CSS = Path(__file__).resolve().parent / "demo" / "static" / "demo" / "app.css"


def get(url):
    with urllib.request.urlopen(url, timeout=20) as response:
        return response.status, response.read()


def notes(url):
    """The notes the server lists, checking that it reads the test's database."""
    status, body = get(url)
    assert status == 200
    answer = json.loads(body)
    assert answer["database"] == str(connection.settings_dict["NAME"])
    return answer["notes"]


def echo(ws_url, text):
    with connect(ws_url, open_timeout=20) as websocket:
        websocket.send(text)
        return websocket.recv(timeout=20)


def record(server_url, backend):
    """Append this test's server and database to the file the outer test reads."""
    with open(os.environ["LIVE_SERVER_RECORD"], "a") as file:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        database = str(connection.settings_dict["NAME"])
        line = {"worker": worker, "pid": os.getpid(), "url": server_url, "backend": backend}
        line["database"] = database
        file.write(json.dumps(line) + "\\n")


def leave_open(server_url):
    """A WebSocket and an endless event stream, left open for the server's stop to end."""
    ws_url = server_url.replace("http", "ws", 1) + "/ws/echo/"
    stream = socket.create_connection((urlsplit(server_url).hostname, urlsplit(server_url).port))
    stream.sendall(b"GET /events/ HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
    assert stream.makefile("rb").readline().split()[1] == b"200"
    left_open = contextlib.ExitStack()
    left_open.enter_context(connect(ws_url, open_timeout=20))
    left_open.enter_context(stream)
    return left_open
'''

PYTEST_TESTS = """
import pytest
from django.db import connection, transaction

from demo.models import Note
from live_checks import APP_CSS, echo, get, leave_open, notes, record

LEFT_OPEN = []


@pytest.mark.parametrize("text", ["one", "two", "three", "four"])
def test_rows_of_the_test_and_only_those(asgi_live_server, text):
    record(asgi_live_server.url, asgi_live_server.backend.name)
    assert notes(asgi_live_server + "/notes/") == []
    Note.objects.create(text=text)
    Note.objects.create(text=text + "-bis")
    assert notes(asgi_live_server + "/notes/") == [text, text + "-bis"]
    assert notes(f"{asgi_live_server}/async-notes/") == [text, text + "-bis"]


def test_server_shares_the_tests_in_memory_connection(asgi_live_server):
    # Rows the test has not committed yet: only its own connection sees them.
    record(asgi_live_server.url, asgi_live_server.backend.name)
    if not connection.is_in_memory_db():
        pytest.skip("a database on disk is reached by the server's own connections")
    with transaction.atomic():
        Note.objects.create(text="pending")
        assert notes(asgi_live_server + "/notes/") == ["pending"]
        assert notes(asgi_live_server + "/async-notes/") == ["pending"]


def test_websocket(asgi_live_server):
    record(asgi_live_server.url, asgi_live_server.backend.name)
    assert echo(asgi_live_server.url.replace("http", "ws", 1) + "/ws/echo/", "hi") == "echo: hi"
    LEFT_OPEN.append(leave_open(asgi_live_server.url))


def test_static_file(asgi_live_server):
    record(asgi_live_server.url, asgi_live_server.backend.name)
    assert get(asgi_live_server + "/static/demo/app.css") == (200, APP_CSS.read_bytes())
"""

UNITTEST_TESTS = """
from django.db import transaction

from django_asgiserve.testing import ASGILiveServerTestCase

from demo.models import Note
from live_checks import APP_CSS, echo, get, notes, record


class LiveTests(ASGILiveServerTestCase):
    def setUp(self):
        record(self.live_server_url, self.live_server.backend.name)

    def check_rows(self, text):
        self.assertEqual(notes(self.live_server_url + "/notes/"), [])
        Note.objects.create(text=text)
        self.assertEqual(notes(self.live_server_url + "/notes/"), [text])
        self.assertEqual(notes(self.live_server_url + "/async-notes/"), [text])

    def test_rows_one(self):
        self.check_rows("one")

    def test_rows_two(self):
        self.check_rows("two")

    def test_rows_the_test_has_not_committed(self):
        with transaction.atomic():
            Note.objects.create(text="pending")
            self.assertEqual(notes(self.live_server_url + "/notes/"), ["pending"])
            self.assertEqual(notes(self.live_server_url + "/async-notes/"), ["pending"])

    def test_websocket(self):
        ws_url = self.live_server_url.replace("http", "ws", 1) + "/ws/echo/"
        self.assertEqual(echo(ws_url, "hi"), "echo: hi")



class StaticTests(ASGILiveServerTestCase):
    # A second class: a server of its own, started after the first one stopped.
    def test_static_file(self):
        record(self.live_server_url, self.live_server.backend.name)
        css = get(self.live_server_url + "/static/demo/app.css")
        self.assertEqual(css, (200, APP_CSS.read_bytes()))
"""


#: A page that shows the notes, styles itself with a static file and fills a paragraph with
#: what the WebSocket route answers.
BOARD_TEMPLATE = """{% extends "base.html" %}
{% block content %}
<ul id="notes">{% for note in notes %}<li>{{ note.text }}</li>{% endfor %}</ul>
<p id="echo" class="pending">waiting</p>
{% endblock %}
{% block scripts %}
<script>
  const socket = new WebSocket(`ws://${location.host}/ws/echo/`);
  socket.onopen = () => socket.send("from the browser");
  socket.onmessage = (event) => {
    const echo = document.getElementById("echo");
    echo.textContent = event.data;
    echo.className = "ok";
  };
</script>
{% endblock %}
"""

CHROMIUM = CHROMIUM_MODULE

PYTEST_BROWSER_TESTS = """
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import chromium
from demo.models import Note
from live_checks import record


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def test_the_page_over_asgi(asgi_live_server, browser):
    record(asgi_live_server.url, asgi_live_server.backend.name)
    Note.objects.create(text="written by the test")
    browser.get(asgi_live_server + "/board/")
    assert browser.find_element(By.ID, "notes").text == "written by the test"
    echo = WebDriverWait(browser, 20).until(lambda d: d.find_element(By.CSS_SELECTOR, "#echo.ok"))
    assert echo.text == "echo: from the browser"
    assert echo.value_of_css_property("color") == "rgba(25, 105, 44, 1)"  # app.css's .ok
"""

UNITTEST_BROWSER_TESTS = """
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import chromium
from demo.models import Note
from django_asgiserve.testing import ASGILiveServerTestCase
from live_checks import record


class BrowserTests(ASGILiveServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.browser = chromium()
        cls.addClassCleanup(cls.browser.quit)

    def test_the_page_over_asgi(self):
        record(self.live_server_url, self.live_server.backend.name)
        Note.objects.create(text="written by the test")
        self.browser.get(self.live_server_url + "/board/")
        self.assertEqual(self.browser.find_element(By.ID, "notes").text, "written by the test")
        echo = WebDriverWait(self.browser, 20).until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#echo.ok")
        )
        self.assertEqual(echo.text, "echo: from the browser")
        self.assertEqual(echo.value_of_css_property("color"), "rgba(25, 105, 44, 1)")
"""


@pytest.fixture
def live_project(project: Path) -> Path:
    """``testproject`` with views listing its ``Note`` rows and tests of both flavours."""
    (project / "demo" / "live_views.py").write_text(NOTES_VIEWS)
    (project / "testproject" / "live_urls.py").write_text(LIVE_URLS)
    (project / "testproject" / "live_settings.py").write_text(LIVE_SETTINGS)
    (project / "live_checks.py").write_text(RECORD)
    (project / "test_live_pytest.py").write_text(PYTEST_TESTS)
    (project / "live_unittest").mkdir()
    (project / "live_unittest" / "__init__.py").write_text("")
    (project / "live_unittest" / "test_live.py").write_text(UNITTEST_TESTS)
    (project / "demo" / "templates" / "demo" / "board.html").write_text(BOARD_TEMPLATE)
    (project / "browser.py").write_text(CHROMIUM)
    (project / "test_live_browser.py").write_text(PYTEST_BROWSER_TESTS)
    (project / "live_unittest" / "test_browser.py").write_text(UNITTEST_BROWSER_TESTS)
    (project / "pytest.ini").write_text(
        "[pytest]\nDJANGO_SETTINGS_MODULE = testproject.live_settings\n"
    )
    return project


def run(project: Path, args: list[str], **env: str) -> tuple[subprocess.CompletedProcess, list]:
    """Run ``args`` in the project; return the result and the servers its tests recorded."""
    record = project / "servers.jsonl"
    environ = child_environ({"LIVE_SERVER_RECORD": str(record), **env})
    for name in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):
        environ.pop(name, None)
    result = subprocess.run(
        [sys.executable, *args],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    servers = (
        [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    )
    return result, servers


def run_pytest(project: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list]:
    """The project's pytest (by default, on its tests without a browser)."""
    if not any(arg.endswith(".py") for arg in args):
        args = ("test_live_pytest.py", *args)
    return run(project, ["-m", "pytest", "-p", "no:cacheprovider", *args], **env)


def run_manage_py_test(
    project: Path, label: str = "live_unittest.test_live", **env: str
) -> tuple[subprocess.CompletedProcess, list]:
    return run(
        project, ["manage.py", "test", label, "--settings", "testproject.live_settings"], **env
    )


def summary(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stdout.splitlines() if line.startswith("=")]
    return lines[-1] if lines else ""


@pytest.mark.parametrize("backend", IN_THREAD_BACKENDS)
def test_pytest_fixture(live_project: Path, backend: str) -> None:
    result, servers = run_pytest(live_project, "--asgi-live-server-backend", backend)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.fullmatch(r"=+ 7 passed in [\d.]+s( \([\d:]+\))? =+", summary(result)), result.stdout
    assert len(servers) == 7
    # One server for the session, of the backend asked for.
    assert {(s["url"], s["backend"]) for s in servers} == {(servers[0]["url"], backend)}


@pytest.mark.parametrize("backend", IN_THREAD_BACKENDS)
def test_pytest_fixture_under_xdist(live_project: Path, backend: str) -> None:
    result, servers = run_pytest(live_project, "-n", "2", ASGISERVE_TEST_BACKEND=backend)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.fullmatch(r"=+ 7 passed in [\d.]+s( \([\d:]+\))? =+", summary(result)), result.stdout
    by_worker = {s["worker"]: s["url"] for s in servers}
    assert set(by_worker) == {"gw0", "gw1"}, servers
    assert len(set(by_worker.values())) == 2, "each worker has a server of its own"
    assert {s["backend"] for s in servers} == {backend}


def test_database_file_under_xdist(live_project: Path) -> None:
    # Not in memory: the server reaches each worker's own test database with its own
    # connections; rows the test commits are seen, the uncommitted ones are not shared.
    result, servers = run_pytest(
        live_project, "-n", "2", LIVE_TEST_DATABASE_FILE=str(live_project / "test_db.sqlite3")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.fullmatch(r"=+ 6 passed, 1 skipped in [\d.]+s( \([\d:]+\))? =+", summary(result)), (
        result.stdout
    )
    databases = {s["worker"]: s["database"] for s in servers}
    assert databases == {
        "gw0": str(live_project / "test_db.sqlite3_gw0"),
        "gw1": str(live_project / "test_db.sqlite3_gw1"),
    }


@pytest.mark.parametrize("backend", IN_THREAD_BACKENDS)
def test_unittest_case(live_project: Path, backend: str) -> None:
    result, servers = run_manage_py_test(live_project, ASGISERVE_TEST_BACKEND=backend)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^Ran 5 tests in [\d.]+s\n\nOK$", result.stderr, re.M), result.stderr
    assert len(servers) == 5
    assert {s["backend"] for s in servers} == {backend}
    # A server per class, as Django's LiveServerTestCase.
    assert len({s["url"] for s in servers}) == 2


@pytest.mark.parametrize("backend", IN_THREAD_BACKENDS)
def test_browser_with_pytest(live_project: Path, backend: str) -> None:
    result, servers = run_pytest(
        live_project, "test_live_browser.py", "--asgi-live-server-backend", backend
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.fullmatch(r"=+ 1 passed in [\d.]+s( \([\d:]+\))? =+", summary(result)), result.stdout
    assert [s["backend"] for s in servers] == [backend]


@pytest.mark.parametrize("backend", IN_THREAD_BACKENDS)
def test_browser_with_manage_py_test(live_project: Path, backend: str) -> None:
    result, servers = run_manage_py_test(
        live_project, "live_unittest.test_browser", ASGISERVE_TEST_BACKEND=backend
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^Ran 1 test in [\d.]+s\n\nOK$", result.stderr, re.M), result.stderr
    assert [s["backend"] for s in servers] == [backend]


@pytest.mark.parametrize("backend", IN_THREAD_BACKENDS)
def test_unittest_case_in_parallel(live_project: Path, backend: str) -> None:
    result, servers = run(
        live_project,
        [
            *("manage.py", "test", "live_unittest.test_live", "--parallel", "2"),
            *("--settings", "testproject.live_settings"),
        ],
        ASGISERVE_TEST_BACKEND=backend,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^Ran 5 tests in [\d.]+s\n\nOK$", result.stderr, re.M), result.stderr
    # A server per class, in the worker process that runs the class (the workers take the
    # classes as they come: one may run both).
    pid_by_url = {s["url"]: s["pid"] for s in servers}
    assert len(pid_by_url) == 2, servers
    assert {(s["url"], s["pid"]) for s in servers} == set(pid_by_url.items())
    assert result.stderr.count("Destroying test database") == 3  # the workers' and the main one


def test_backend_that_cannot_serve_in_a_thread_is_a_usage_error(live_project: Path) -> None:
    result, servers = run_pytest(live_project, "--asgi-live-server-backend", "daphne")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert (
        "--asgi-live-server-backend daphne: 'daphne' cannot serve in a thread of the test "
        "process. Choose one of: auto, uvicorn, hypercorn, granian." in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert servers == []


def test_test_backend_setting_that_cannot_serve_fails_the_tests_clearly(live_project: Path) -> None:
    result, servers = run_pytest(live_project, ASGISERVE_TEST_BACKEND="gunicorn")
    assert result.returncode == pytest.ExitCode.TESTS_FAILED
    assert re.fullmatch(r"=+ 7 errors in [\d.]+s =+", summary(result)), result.stdout
    assert (
        "ASGISERVE['TEST_BACKEND']: 'gunicorn' cannot serve in a thread of the test process"
        in result.stdout
    )
    assert "Traceback" not in result.stdout
    assert "During handling" not in result.stdout
    assert servers == []


def test_test_backend_setting_is_checked_by_manage_py_test(live_project: Path) -> None:
    result, _ = run_manage_py_test(live_project, ASGISERVE_TEST_BACKEND="daphne")
    assert result.returncode == 1
    assert "(asgiserve.E012) ASGISERVE['TEST_BACKEND']: 'daphne' cannot serve in a thread" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("settings", "chosen"),
    [
        ({}, "uvicorn"),
        ({"BACKEND": "hypercorn"}, "hypercorn"),
        ({"BACKEND": "daphne"}, "uvicorn"),
        ({"BACKEND": "hypercorn", "TEST_BACKEND": "granian"}, "granian"),
    ],
)
def test_backend_choice(settings: dict[str, str], chosen: str) -> None:
    from django_asgiserve.live.server import LiveServerError, choose_backend

    with override_settings(ASGISERVE=settings):
        assert choose_backend().name == chosen
        assert choose_backend("hypercorn").name == "hypercorn"
        with pytest.raises(LiveServerError) as raised:
            choose_backend("gunicorn")
    assert str(raised.value) == (
        "The live server's backend 'gunicorn' cannot serve in a thread of the test process.\n"
        "HINT: Choose one of: auto, uvicorn, hypercorn, granian."
    )


def test_a_port_in_use_is_one_clear_error() -> None:
    from django.db import connection

    from django_asgiserve.live.server import ASGILiveServer, LiveServerError

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        server = ASGILiveServer(port=port)
        with pytest.raises(LiveServerError) as raised:
            server.start()
    assert str(raised.value) == (
        f"The live server cannot listen on 127.0.0.1:{port}: Address already in use."
    )
    assert not connection.allow_thread_sharing  # given back when the start failed
