"""Async views behind Django's default middleware on real servers, with the merged async chain
(``asgi/async_chain.py``: one thread hop per run of sync middleware hooks).

What users rely on must hold on every backend and worker count: CSRF refuses a POST without its
token and accepts one with it, the session and messages carry over to the next request, the view
runs on the event loop, and the middleware's hooks and the view's ``sync_to_async`` calls share
the request's one thread-sensitive thread (not the loop's), leased from the worker's pool of
request threads (``asgi/request_threads.py``).
"""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import async_views_project
from tests.helpers.polling import DEADLINE

POOL_PREFIXES = ("asgiserve-request", "asyncio_")
REQUEST_THREAD = "asgiserve-request"


def check_async_views(url: str, fast: bool) -> None:
    with httpx.Client(base_url=url, timeout=DEADLINE) as client:
        refused = client.post("/av/form/", data={"field": "x"})
        assert refused.status_code == 403, refused.text  # CSRF: no cookie, no token

        token = client.get("/av/form/").json()["token"]
        assert "csrftoken" in client.cookies
        for count in (1, 2):
            posted = client.post("/av/form/", data={"field": "x"}, headers={"X-CSRFToken": token})
            assert posted.status_code == 200, posted.text
            assert posted.json() == {"count": count, "field": "x"}  # the session carried over
            told = client.get("/av/told/").json()
            assert told == {"messages": [f"count is {count}"]}
            assert posted.headers["X-Frame-Options"] == "DENY"  # the last process_response ran

        threads = client.get("/av/threads/")
        report = threads.json()
        hook_request, hook_response = threads.headers["X-Hook-Threads"].split(",")
        # The view is awaited on the event loop, not in a thread of any pool.
        assert not report["view"].startswith(POOL_PREFIXES), report
        assert report["sensitive"] != report["view"]
        # Django's semantics: the hooks and the view's thread-sensitive calls share one thread.
        assert hook_request == hook_response == report["sensitive"], (threads.headers, report)
        # A leased request thread, or the one Django's handler starts for the request.
        assert report["sensitive"].startswith(REQUEST_THREAD if fast else "ThreadPoolExecutor")


@pytest.mark.parametrize("workers", [1, 2])
def test_async_views_behind_the_default_middleware(project, start, backend, workers):
    async_views_project.install(project, fast=True)
    server = start("--noreload", "--backend", backend, "--workers", str(workers)).wait_serving()
    check_async_views(server.url, fast=True)


def test_async_views_under_djangos_own_handler(project, start):
    """The same checks with the fast path off: what Django's chain does, which ours must match."""
    async_views_project.install(project, fast=False)
    server = start("--noreload", "--backend", "uvicorn").wait_serving()
    check_async_views(server.url, fast=False)
