"""The smallest project ``asgiserve`` serves, for tests that start a server many times: one view
at ``/``, no database (so no migrations to check), no static files, and one registered system
check that the environment makes pass, fail or take its time.

:func:`environ` sets what the check does, pass or ``fail`` (an ``Error`` with id
:data:`CHECK_ID`), after how long (a real project's checks take their time: URLs, templates,
models, a database), and how long a worker takes to load the project: the command has read the
settings and forked the worker, which imports the URLconf (a sleep in ``urls.py`` in any
process but the one that read the settings first).
"""

from __future__ import annotations

from pathlib import Path

CHECK_ID = "testproject.E001"
CHECK_MESSAGE = "The project's own check fails on purpose."

FILES = {
    "manage.py": """
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
""",
    "testproject/__init__.py": "",
    "testproject/settings.py": """
import os

#: The process that read the settings first: the command, or a preloader (not a worker).
TINY_LOADED_BY = os.getpid()
SECRET_KEY = "tiny-project-for-tests"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django_asgiserve", "testproject"]
MIDDLEWARE = []
ROOT_URLCONF = "testproject.urls"
DATABASES = {}
USE_TZ = True
""",
    "testproject/urls.py": """
import os
import time

from django.conf import settings
from django.http import HttpResponse
from django.urls import path

if os.getpid() != settings.TINY_LOADED_BY:  # a worker, loading the project
    time.sleep(float(os.environ.get("TINY_WORKER_LOAD_SECONDS", "0")))

urlpatterns = [path("", lambda request: HttpResponse("tiny"))]
""",
    "testproject/apps.py": """
from django.apps import AppConfig


class TinyConfig(AppConfig):
    name = "testproject"

    def ready(self):
        from . import checks  # noqa: F401 - registers the check
""",
    "testproject/checks.py": f"""
import os
import time

from django.core import checks


@checks.register
def under_load(app_configs, **kwargs):
    time.sleep(float(os.environ.get("TINY_CHECK_SECONDS", "0")))
    if os.environ.get("TINY_CHECK") == "fail":
        return [checks.Error({CHECK_MESSAGE!r}, id={CHECK_ID!r})]
    return []
""",
}


def write(target: Path) -> Path:
    """The project at ``target`` (its ``manage.py`` directly inside)."""
    for name, text in FILES.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip())
    return target


def environ(fail: bool = False, check: float = 0.0, worker_load: float = 0.0) -> dict[str, str]:
    """The environment that makes the project's check take ``check`` seconds, then pass or
    ``fail``, and each worker take ``worker_load`` seconds more than the command to load the
    project (a real project's URLconf imports most of it, and only workers import it first)."""
    return {
        "TINY_CHECK": "fail" if fail else "pass",
        "TINY_CHECK_SECONDS": f"{check:.3f}",
        "TINY_WORKER_LOAD_SECONDS": f"{worker_load:.3f}",
    }
