"""A release of Django, asgiref or django-browser-reload that changed what asgiserve relies on
(``django_asgiserve/upstream/``): the site is still served, without the one feature the change
takes away, said once as ``asgiserve.W030`` (or, for a fallback that loses nothing, as
``asgiserve.I030`` at verbosity 2 only).

Each change is simulated in every process the command starts, by renaming in the upstream's
source what a release would rename (``tests/helpers/upstream_changes.py``).
"""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.upstream_changes import changed_environ

MESSAGE = "hello from testproject"


def start_changed(start, tmp_path, renames, *args: str, env: dict[str, str] | None = None):
    environ = {**changed_environ(tmp_path / "changed", renames), **(env or {})}
    return start("--backend", "uvicorn", *args, env=environ).wait_serving()


def warned_once(server, named: str) -> None:
    assert server.stderr.text.count("(asgiserve.W030)") == 1, server.output
    assert named in server.stderr.text, server.output


def test_without_the_middleware_chain_async_views_take_djangos_chain(start, tmp_path):
    renames = {"django.core.handlers.base": [("_middleware_chain", "_request_chain")]}
    server = start_changed(start, tmp_path, renames)
    warned_once(server, "BaseHandler._middleware_chain")
    response = server.get("/async/")
    assert (response.status_code, response.text) == (200, MESSAGE)


def test_without_asgihandlers_hooks_django_serves_without_the_fast_path(start, tmp_path):
    renames = {"django.core.handlers.asgi": [("read_body", "read_request_body")]}
    server = start_changed(start, tmp_path, renames)
    warned_once(server, "ASGIHandler.handle, read_body")
    assert (server.get("/sync/").status_code, server.get("/sync/").text) == (200, MESSAGE)
    body = b"x" * 300_000
    response = httpx.post(f"{server.url}/upload/", content=body, timeout=30)
    assert (response.status_code, response.json()["size"]) == (200, len(body))


def test_without_get_script_prefix_the_fast_path_computes_it(start, tmp_path):
    renames = {"django.core.handlers.asgi": [("get_script_prefix", "script_prefix_of")]}
    server = start_changed(start, tmp_path, renames, "-v", "2")
    assert server.stderr.text.count("(asgiserve.I030)") == 1, server.output
    assert "(asgiserve.W030)" not in server.output
    assert (server.get("/sync/").status_code, server.get("/sync/").text) == (200, MESSAGE)


def test_a_fallback_that_loses_nothing_is_said_at_verbosity_2_only(start, tmp_path):
    renames = {"django.core.handlers.asgi": [("get_script_prefix", "script_prefix_of")]}
    server = start_changed(start, tmp_path, renames)
    assert "asgiserve.I030" not in server.output
    assert server.get("/sync/").status_code == 200


def test_without_the_static_handlers_hooks_django_serves_static_files(start, tmp_path):
    renames = {"django.contrib.staticfiles.handlers": [("file_path", "path_of_file")]}
    server = start_changed(start, tmp_path, renames)
    warned_once(server, "StaticFilesHandlerMixin.serve and file_path")
    found = server.get("/static/demo/app.css")
    assert (
        found.status_code == 200
        and found.text == (server.project / "demo" / "static" / "demo" / "app.css").read_text()
    )
    assert server.get("/static/demo/missing.css").status_code == 404


def test_without_asgirefs_executor_map_async_views_query_in_asgirefs_thread(start, tmp_path):
    renames = {"asgiref.sync": [("context_to_thread_executor", "executors_by_context")]}
    server = start_changed(start, tmp_path, renames)
    warned_once(server, "SyncToAsync.context_to_thread_executor")
    response = server.get("/async-queries/?n=2")
    assert (response.status_code, response.text) == (200, "done")


def test_without_browser_reloads_version_id_tabs_follow_its_own(start, tmp_path):
    pytest.importorskip("django_browser_reload")
    renames = {"django_browser_reload.views": [("version_id", "current_version_id")]}
    env = {"ASGISERVE_DEMO_BROWSER_RELOAD": "1"}
    server = start_changed(start, tmp_path, renames, env=env)
    warned_once(server, "django_browser_reload.views.version_id")
    assert server.get("/").status_code == 200
