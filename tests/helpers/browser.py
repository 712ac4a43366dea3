"""Headless Chromium for the tests, through Selenium: one browser per test, asserting what the
page shows (its text, polled against a deadline), never which request or event made it so."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.polling import wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

#: A module for a test project's own tests (written there as ``browser.py``): ``chromium()``
#: starts the same headless Chromium, from the project's test process.
CHROMIUM_MODULE = """
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def chromium():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={tempfile.mkdtemp()}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
"""


def missing() -> str | None:
    """Why no browser test can run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (it comes with the test extra)"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is missing (Debian: apt-get install chromium chromium-driver)"
    return None


@contextlib.contextmanager
def session(home: Path | None = None) -> Iterator[object]:
    """A headless Chromium WebDriver with a profile of its own, quit at the end; with ``home``,
    Chromium's home directory, whose ``.pki/nssdb`` holds the certificates it trusts."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="asgiserve-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    env = {**os.environ, "HOME": str(home)} if home is not None else None
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER), env=env))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def chromium() -> Iterator[object]:
    """A headless Chromium session (skipped, with the reason, where there is none)."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    with session() as driver:
        yield driver


def page_text(driver: object) -> str:
    """The text the page shows now ("" while it is between documents)."""
    from selenium.common.exceptions import WebDriverException

    try:
        return str(
            driver.execute_script(  # type: ignore[attr-defined]
                "return document.body ? document.body.innerText : ''"
            )
        )
    except WebDriverException:
        return ""


def wait_for_text(driver: object, text: str, timeout: float, what: str = "") -> float:
    """Poll until the page shows ``text``; the seconds it took. Fails at the deadline."""
    started = time.monotonic()
    waiting = f"the tab to show {text!r}{f' ({what})' if what else ''}"
    try:
        wait_for(lambda: text in page_text(driver), timeout, what=waiting)
    except pytest.fail.Exception:
        shown = page_text(driver)
        pytest.fail(
            f"timed out after {timeout:.0f}s waiting for {waiting}; it shows:\n{shown[:2000]}"
        )
    return time.monotonic() - started
