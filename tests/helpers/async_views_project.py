"""Async views behind the default middleware, added to a test's copy of ``testproject``.

``install(project, fast=...)`` writes ``demo/async_views.py`` (routed under ``/av/``), a
middleware that reports the threads its hooks ran in, runs ``migrate`` (sessions live in the
database) and sets ``ASGISERVE["SYNC_FAST_PATH"]``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.polling import DEADLINE
from tests.helpers.server import child_environ

VIEWS = """
import threading

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.http import JsonResponse
from django.middleware.csrf import get_token
from django.utils.deprecation import MiddlewareMixin


def _thread():
    return threading.current_thread().name


class HookThreads(MiddlewareMixin):
    \"\"\"Last in MIDDLEWARE: the threads its process_request and process_response ran in.\"\"\"

    def process_request(self, request):
        request.hook_thread = _thread()

    def process_response(self, request, response):
        response["X-Hook-Threads"] = f"{getattr(request, 'hook_thread', '')},{_thread()}"
        return response


def _count_and_tell(request):
    count = request.session.get("count", 0) + 1
    request.session["count"] = count
    messages.info(request, f"count is {count}")
    return count


async def form(request):
    if request.method == "POST":  # reached only with a valid CSRF token
        count = await sync_to_async(_count_and_tell)(request)
        return JsonResponse({"count": count, "field": request.POST["field"]})
    return JsonResponse({"token": get_token(request)})


async def told(request):
    told = await sync_to_async(lambda: [str(m) for m in messages.get_messages(request)])()
    return JsonResponse({"messages": told})


async def threads(request):
    return JsonResponse(
        {
            "view": _thread(),
            "sensitive": await sync_to_async(_thread)(),
            "main": threading.current_thread() is threading.main_thread(),
        }
    )
"""

URLS = """
from django.urls import path

from demo import async_views as v

urlpatterns = [
    path("form/", v.form),
    path("told/", v.told),
    path("threads/", v.threads),
]
"""


def install(project: Path, *, fast: bool) -> None:
    demo = project / "demo"
    (demo / "async_views.py").write_text(VIEWS)
    (demo / "async_urls.py").write_text(URLS)
    urls = project / "testproject" / "urls.py"
    urls.write_text(
        urls.read_text() + '\nurlpatterns.append(path("av/", include("demo.async_urls")))\n'
    )
    settings = project / "testproject" / "settings.py"
    settings.write_text(
        settings.read_text()
        + f'\nASGISERVE["SYNC_FAST_PATH"] = {fast!r}'
        + '\nMIDDLEWARE.append("demo.async_views.HookThreads")\n'
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=project,
        env=child_environ(),
        check=True,
        timeout=DEADLINE,
    )
