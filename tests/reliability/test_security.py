"""Security defaults: where the server listens, what its pages and console reveal, which files
it serves and whose proxy headers it believes.

Requests only ever go to loopback addresses; the machine's other addresses are bound to (to
see the warning) but never sent anything.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.helpers.edits import SYNTAX_ERROR, write
from tests.helpers.polling import wait_for
from tests.helpers.procfs import listening_addresses
from tests.helpers.server import (
    BANNER_URL,
    PROJECT_FILE_MARKERS,
    Server,
    get_target,
    ipv6_loopback,
)
from tests.reliability.probes import answer_to

pytestmark = pytest.mark.reliability

EXPOSED = "DEBUG is on and the server listens on"
SECRET_KEY = "reliability-secret-key-5f1c0e"
API_TOKEN = "reliability-api-token-9b2d7a"
#: How Django's technical 500 page shows a setting whose name looks secret.
MASKED = "********************"
QUIET = ["--noreload", "--skip-checks"]


def banner(server: Server) -> str:
    """The banner (and anything printed before it), once the command has printed it."""

    def printed() -> bool:
        if server.process.poll() is not None:
            pytest.fail(f"the server exited with {server.process.returncode}:\n{server.output}")
        return "Quit the server with" in server.stdout.text

    wait_for(printed, what="the banner")
    return server.stdout.text


def machine_address() -> str | None:
    """An address of this machine that is not loopback, if ``ip`` can tell."""
    if shutil.which("ip") is None:
        return None
    listing = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "scope", "global"], capture_output=True, text=True
    )
    match = re.search(r"\binet (\d+\.\d+\.\d+\.\d+)/", listing.stdout)
    return match[1] if match else None


# -- where it listens ---------------------------------------------------------------------------


def test_the_default_address_is_loopback(start, record):
    server = start(*QUIET, addrport="0").wait_serving()  # a port alone, as "runserver 8000"
    assert server.port is not None
    addresses = listening_addresses(server.port)
    out = banner(server)
    record(
        "default address",
        "manage.py asgiserve PORT",
        f"listens on {', '.join(sorted(addresses))}; banner: {BANNER_URL.search(out)[0]}",
    )
    assert addresses == {"127.0.0.1"}
    assert f"http://127.0.0.1:{server.port}/" in out
    assert EXPOSED not in server.output


def public_binds() -> list[str]:
    binds = ["0:0", "0.0.0.0:0"]
    if ipv6_loopback():
        binds.append("[::]:0")
    if address := machine_address():
        binds.append(f"{address}:0")
    return binds


def test_debug_on_a_public_address_warns(start, record):
    warned = {}
    for addrport in public_binds():
        server = start(*QUIET, addrport=addrport)
        warned[addrport] = [line for line in banner(server).splitlines() if EXPOSED in line]
        server.kill()
    quiet = {}
    for addrport, env in (
        ("127.0.0.1:0", {}),
        ("0:0", {"ASGISERVE_DEMO_DEBUG": "0"}),
    ):
        server = start(*QUIET, env=env, addrport=addrport)
        quiet[addrport + (" DEBUG off" if env else "")] = EXPOSED in banner(server)
        server.kill()
    record(
        "DEBUG on, listening beyond loopback",
        f"{len(warned)} public binds ({', '.join(warned)}), 2 that are not",
        f"warned for {sum(bool(w) for w in warned.values())} of {len(warned)}, e.g. "
        f"{next(iter(warned.values()))[0].strip()!r}; no warning on 127.0.0.1 nor with DEBUG "
        "off",
    )
    assert all(len(lines) == 1 for lines in warned.values()), warned
    assert not any(quiet.values()), quiet


# -- what pages and the console reveal ----------------------------------------------------------

SECRET_SETTINGS = """
import os

API_TOKEN = os.environ["RELIABILITY_API_TOKEN"]
"""
BOOM_VIEW = """

def boom(request):
    raise RuntimeError("boom from a view")
"""
BOOM_URL = """
urlpatterns.append(path("boom/", views.boom))  # noqa: F405
"""


def status(server: Server, path: str) -> int:
    response = server.try_get(path)
    return 0 if response is None else response.status_code


@pytest.mark.parametrize("debug", [True, False], ids=["debug-on", "debug-off"])
def test_tracebacks_and_secrets(start, project, rotating_backend, debug, record):
    (project / "testproject" / "settings_secret.py").write_text(
        "from .settings import *  # noqa: F403\n" + SECRET_SETTINGS
    )
    views = project / "demo" / "views.py"
    views.write_text(views.read_text() + BOOM_VIEW)
    urls = project / "testproject" / "urls.py"
    urls.write_text(urls.read_text() + BOOM_URL)
    env = {
        "DJANGO_SECRET_KEY": SECRET_KEY,
        "RELIABILITY_API_TOKEN": API_TOKEN,
        "ASGISERVE_DEMO_DEBUG": "1" if debug else "0",
    }
    server = start(
        "--backend", rotating_backend, "--settings", "testproject.settings_secret", env=env
    ).wait_serving()

    raised = server.get("/boom/")
    original = views.read_text()
    write(views, original + SYNTAX_ERROR)
    wait_for(lambda: status(server, "/sync/") == 500, what="the broken code's error page")
    broken = server.get("/sync/")
    write(views, original, atomic=True)
    wait_for(lambda: status(server, "/sync/") == 200, what="the fixed code")
    pages = {"view error": raised.text, "broken code": broken.text}
    console = server.output

    leaks = {
        name: [secret for secret in (SECRET_KEY, API_TOKEN) if secret in text]
        for name, text in {**pages, "console": console}.items()
    }
    traced = {name: "Traceback" in text for name, text in pages.items()}
    masked = {
        name: all(re.search(rf"{key}.{{0,200}}{re.escape(MASKED)}", text, re.S) for key in
                  ("SECRET_KEY", "API_TOKEN"))
        for name, text in pages.items()
    }  # fmt: skip
    record(
        f"500 pages and console, DEBUG {'on' if debug else 'off'} ({rotating_backend})",
        "a view raising, then a SyntaxError in views.py; secrets in SECRET_KEY and API_TOKEN "
        "(from the environment)",
        f"statuses {raised.status_code}/{broken.status_code}; traceback shown: "
        f"{traced}; secrets leaked: {sum(map(len, leaks.values()))}; masked in the pages: "
        f"{masked if debug else 'no settings shown'}",
    )
    assert raised.status_code == broken.status_code == 500
    assert not any(leaks.values()), leaks
    if debug:
        assert all(traced.values()) and all(masked.values()), (traced, masked)
    else:
        for text in pages.values():
            for revealing in ("Traceback", "RuntimeError", "SyntaxError", str(project)):
                assert revealing not in text, text
    assert "Traceback" in console  # the developer still sees it, on the console


# -- static files -------------------------------------------------------------------------------

#: Paths the main suite does not try (see ``tests/e2e/test_serving.py``'s ``TRAVERSALS``).
TRAVERSALS = (
    "/static/..%5c..%5cmanage.py",
    "/static/demo%5c..%5c..%5c..%5cmanage.py",
    "/static/%5c..%5c..%5cmanage.py",
    "/static/%255c..%255cmanage.py",
    "/static/%2fetc%2fpasswd",
    "/static/%2F..%2F..%2Fmanage.py",
    "/static/%c0%ae%c0%ae/%c0%ae%c0%ae/manage.py",
    "/static/demo/%2e%2e%2f%2e%2e%2f%2e%2e%2fmanage.py",
    "/static/demo/escape.py",
    "/static/demo/etc/passwd",
    "/static/demo/etc/hostname",
)


def test_static_files_never_leave_the_static_roots(start, project, rotating_backend, record):
    static = project / "demo" / "static" / "demo"
    (static / "escape.py").symlink_to(project / "manage.py")
    (static / "etc").symlink_to("/etc", target_is_directory=True)
    (static / "alias.css").symlink_to(static / "app.css")  # inside the roots: served
    server = start(*QUIET, "--backend", rotating_backend).wait_serving()

    answers = {}
    for target in TRAVERSALS:
        response = get_target(server, target)
        leaked = any(m in response.text for m in PROJECT_FILE_MARKERS) or "root:" in response.text
        answers[target] = "LEAKED" if leaked else str(response.status_code)
    assert server.port is not None
    raw = answer_to(server.port, b"GET /static/../../manage.py HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    alias = server.get("/static/demo/alias.css").status_code
    record(
        f"static path traversal ({rotating_backend})",
        f"{len(TRAVERSALS)} paths (%5c, %2f, %255c, overlong UTF-8, symlinks to a project "
        "file and to /etc) and a raw ../ request line",
        f"answers: {', '.join(sorted(set(answers.values())))}; raw: {raw}; a symlink inside "
        f"the static roots: {alias}",
    )
    wrong = {t: a for t, a in answers.items() if a not in ("400", "404")}
    assert not wrong, (wrong, server.output[-4000:])
    assert raw in ("400", "404")
    assert alias == 200


# -- proxy headers ------------------------------------------------------------------------------

SPOOFED = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example",
    "X-Real-IP": "203.0.113.8",
    "Forwarded": "for=203.0.113.9;proto=https;host=evil.example",
}


def test_proxy_headers_from_peers_that_are_not_trusted(start, rotating_backend, record):
    # Trusted: neighbours of the real peer (127.0.0.1), never the peer itself.
    server = start(
        *QUIET, "--backend", rotating_backend, "--proxy-headers",
        "--forwarded-allow-ips", "127.0.0.2,127.0.1.0/24,10.0.0.0/8,::2",
    ).wait_serving()  # fmt: skip
    data = server.get("/headers/", headers=SPOOFED).json()
    seen = {key: data[key] for key in ("remote_addr", "scheme", "is_secure", "host")}
    record(
        f"proxy headers from an untrusted peer ({rotating_backend})",
        "--proxy-headers, trusting 127.0.0.2, 127.0.1.0/24, 10.0.0.0/8, ::2; X-Forwarded-For/"
        "-Proto/-Host, X-Real-IP and Forwarded from 127.0.0.1",
        f"request seen as {seen}",
    )
    assert seen == {
        "remote_addr": "127.0.0.1",
        "scheme": "http",
        "is_secure": False,
        "host": f"127.0.0.1:{server.port}",
    }


def test_loopback_only_by_default_for_ipv6_too(start, record):
    if not ipv6_loopback():
        pytest.skip("no IPv6 on the loopback interface")
    server = start(*QUIET, "--ipv6", addrport="0")
    match = BANNER_URL.search(banner(server))
    assert match is not None
    addresses = listening_addresses(int(match[3]))
    record("default address with --ipv6", "manage.py asgiserve -6 PORT", f"listens on {addresses}")
    assert addresses == {"::1"}
