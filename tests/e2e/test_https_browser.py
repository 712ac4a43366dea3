"""``--https`` in real headless Chromium (``-m browser``), whose home directory's NSS database is
the test's own: once ``asgiserve_ca trust`` has added the local authority, the page loads with no
interstitial, over HTTP/2 where the backend speaks it, and a ``Secure`` cookie is kept and sent
back, on every backend; without trusting, Chromium refuses. The tests' live server over HTTPS
(the ``asgi_live_server_https`` fixture, ``ASGILiveServerTestCase.https``) gives a page a secure
context."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.browser import CHROMIUM_MODULE, missing, page_text, session, wait_for_text
from tests.helpers.commands import manage
from tests.helpers.local_ca import LocalCA, serve_https
from tests.helpers.server import child_environ
from tests.helpers.tls import HTTP_OVER_TLS

pytestmark = pytest.mark.browser
#: ``nextHopProtocol`` for what the backend speaks over TLS.
ALPN = {"HTTP/2": "h2", "HTTP/1.1": "http/1.1"}
RUN_TIMEOUT = 300


@pytest.fixture(autouse=True)
def _browser_installed() -> None:
    reason = missing()
    if reason is None and shutil.which("certutil") is None:
        reason = "NSS's certutil is missing (Debian: apt-get install libnss3-tools)"
    if reason:
        pytest.skip(reason)


def trust(project: Path, local_ca: LocalCA) -> None:
    """What the user does once: ``manage.py asgiserve_ca trust`` (the authority is made too)."""
    result = manage(project, "asgiserve_ca", "trust", env=local_ca.env)
    assert result.code == 0, result.output


def test_trusted_https_with_its_protocol_and_a_secure_cookie(start, project, backend, local_ca):
    trust(project, local_ca)
    server = serve_https(start, local_ca, "--backend", backend)
    with session(home=local_ca.home) as driver:
        driver.get(f"{server.url}/secure-cookie/")  # type: ignore[attr-defined]
        wait_for_text(driver, "secure cookie: none", 30, "the page itself, no interstitial")
        script = "return [performance.getEntries()[0].nextHopProtocol, window.isSecureContext]"
        protocol, secure = driver.execute_script(script)  # type: ignore[attr-defined]
        assert (protocol, secure) == (ALPN[HTTP_OVER_TLS[backend]], True)
        driver.get(f"{server.url}/secure-cookie/")  # type: ignore[attr-defined]
        wait_for_text(driver, "secure cookie: kept", 30, "the Secure cookie sent back")


def test_without_trusting_chromium_refuses(start, project, local_ca):
    nssdb = local_ca.home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "--empty-password", "-d", f"sql:{nssdb}"], check=True)
    server = serve_https(start, local_ca)
    with session(home=local_ca.home) as driver:
        driver.get(f"{server.url}/secure-cookie/")  # type: ignore[attr-defined]
        wait_for_text(driver, "NET::ERR_CERT_AUTHORITY_INVALID", 30, "Chromium's interstitial")
        assert "secure cookie" not in page_text(driver)


# -- the tests' live server over HTTPS ----------------------------------------------------------

PROJECT_TESTS = """
from browser import chromium
from django_asgiserve.testing import ASGILiveServerTestCase


def visit_twice(url):
    browser = chromium()
    try:
        browser.get(url + "/secure-cookie/")
        first = browser.execute_script("return [document.body.innerText, isSecureContext]")
        browser.get(url + "/secure-cookie/")
        return first, browser.execute_script("return document.body.innerText")
    finally:
        browser.quit()


def test_fixture(asgi_live_server_https):
    assert asgi_live_server_https.url.startswith("https://")
    assert visit_twice(asgi_live_server_https.url) == (
        ["secure cookie: none", True], "secure cookie: kept"
    )


class SecureContextTests(ASGILiveServerTestCase):
    https = True

    def test_case(self):
        self.assertTrue(self.live_server_url.startswith("https://"))
        self.assertEqual(
            visit_twice(self.live_server_url),
            (["secure cookie: none", True], "secure cookie: kept"),
        )
"""


def test_the_live_server_over_https_gives_a_secure_context(project, local_ca):
    # One backend: the live server's TLS on each is test_https.py's (in process, no browser).
    backend = "uvicorn"
    trust(project, local_ca)
    (project / "browser.py").write_text(CHROMIUM_MODULE)
    (project / "test_secure_context.py").write_text(PROJECT_TESTS)
    (project / "pytest.ini").write_text("[pytest]\nDJANGO_SETTINGS_MODULE = testproject.settings\n")
    environ = child_environ({**local_ca.env, "ASGISERVE_BACKEND": backend})
    for name in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT"):
        environ.pop(name, None)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_secure_context.py"]
    command += ["--asgi-live-server-backend", backend]
    result = subprocess.run(
        command, cwd=project, env=environ, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"=+ 2 passed in ", result.stdout), result.stdout
