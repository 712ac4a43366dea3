"""Popular companions served through asgiserve, with real servers and clients:
django-debug-toolbar (DEBUG on) and whitenoise (DEBUG off, after ``collectstatic``).

The demo turns them on by environment variables (see ``testproject/settings.py``).
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.helpers import browser
from tests.helpers.polling import DEADLINE
from tests.helpers.server import child_environ

TOOLBAR = {"ASGISERVE_DEMO_DEBUG_TOOLBAR": "1"}
WHITENOISE = {
    "ASGISERVE_DEMO_WHITENOISE": "1",
    "ASGISERVE_DEMO_DEBUG": "0",
}


def test_debug_toolbar_shows_with_its_static_and_panels(start, backend):
    server = start("--backend", backend, env=TOOLBAR).wait_serving()
    page = server.get("/")
    assert page.status_code == 200
    assert 'id="djDebug"' in page.text, page.text
    request_id = re.search(r'data-request-id="(\w+)"', page.text)
    panel_url = re.search(r'data-render-panel-url="([^"]+)"', page.text)
    assert request_id and panel_url, page.text

    for asset in re.findall(r'(?:src|href)="(/static/debug_toolbar/[^"]+)"', page.text):
        response = server.get(asset)
        assert response.status_code == 200, asset
        assert response.content, asset
    assert "/static/debug_toolbar/js/toolbar.js" in page.text

    panel = server.get(
        panel_url.group(1),
        params={"request_id": request_id.group(1), "panel_id": "TemplatesPanel"},
    )
    assert panel.status_code == 200, panel.text
    assert "demo/index.html" in panel.json()["content"]
    assert "Traceback" not in server.output, server.output


def collectstatic(project) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=project,
        env=child_environ(WHITENOISE),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_whitenoise_serves_collected_static_with_debug_off(start, project, backend):
    collectstatic(project)
    server = start("--noreload", "--backend", backend, env=WHITENOISE).wait_serving()
    css = (project / "demo" / "static" / "demo" / "app.css").read_bytes()
    response = server.get("/static/demo/app.css")
    assert response.status_code == 200
    assert response.content == css
    # whitenoise's own headers: asgiserve's static layer is off with DEBUG off.
    assert response.headers["cache-control"] == "max-age=60, public"
    assert response.headers["access-control-allow-origin"] == "*"
    assert server.get("/static/demo/missing.css").status_code == 404
    assert "Traceback" not in server.output, server.output


def test_without_whitenoise_debug_off_serves_no_static(start, project):
    collectstatic(project)
    server = start("--noreload", env={"ASGISERVE_DEMO_DEBUG": "0"}).wait_serving()
    assert server.get("/static/demo/app.css").status_code == 404


@pytest.mark.parametrize("backend", ["uvicorn", "hypercorn"])
def test_debug_toolbar_in_a_browser(start, backend):
    """The toolbar appears on the page, and a click on a panel loads and shows its content."""
    why_not = browser.missing()
    if why_not:
        pytest.skip(why_not)
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    server = start("--backend", backend, env=TOOLBAR).wait_serving()
    with browser.session() as driver:
        driver.get(server.url + "/")
        wait = WebDriverWait(driver, DEADLINE)
        # The toolbar lives in a shadow root of its own (a declarative one, in its HTML).
        root = wait.until(lambda d: d.find_element(By.ID, "djDebugRoot").shadow_root)
        toolbar = root.find_element(By.CSS_SELECTOR, "#djDebugToolbar")
        wait.until(lambda _driver: toolbar.is_displayed())
        assert "Templates" in toolbar.text
        root.find_element(By.CSS_SELECTOR, "#djdt-TemplatesPanel a.TemplatesPanel").click()
        panel = root.find_element(By.CSS_SELECTOR, "#TemplatesPanel")
        wait.until(lambda _driver: panel.is_displayed() and "demo/index.html" in panel.text)
    assert "/__debug__/render_panel/" in server.output


def test_debug_toolbar_panels_with_workers_and_a_shared_store(start, project, backend):
    """With --workers 2 the panel may be asked of the other worker: a store every process
    shares (the toolbar's CacheStore on a file cache) finds the request's data there too."""
    cache = project / "toolbar-cache"
    (project / "testproject" / "settings_toolbar.py").write_text(
        "from .settings import *  # noqa: F403\n"
        'DEBUG_TOOLBAR_CONFIG = {"TOOLBAR_STORE_CLASS": "debug_toolbar.store.CacheStore"}\n'
        "CACHES = {'default': {\n"
        "    'BACKEND': 'django.core.cache.backends.filebased.FileBasedCache',\n"
        f"    'LOCATION': {str(cache)!r},\n"
        "}}\n"
    )
    env = {**TOOLBAR, "DJANGO_SETTINGS_MODULE": "testproject.settings_toolbar"}
    server = start("--backend", backend, "--workers", "2", env=env).wait_serving()
    for _page in range(8):
        # A connection per request: the kernel spreads them over both workers' sockets.
        page = server.get("/", headers={"Connection": "close"})
        request_id = re.search(r'data-request-id="(\w+)"', page.text)
        assert request_id, page.text
        panel = server.get(
            "/__debug__/render_panel/",
            params={"request_id": request_id.group(1), "panel_id": "TemplatesPanel"},
            headers={"Connection": "close"},
        )
        assert panel.status_code == 200, panel.text
        assert "demo/index.html" in panel.json()["content"]
    assert "Traceback" not in server.output, server.output
