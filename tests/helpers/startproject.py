"""A project as a new user makes one: ``django-admin startproject`` plus ``startapp``, with only
sync views, ``MEDIA_URL`` served by ``static()`` in ``urls.py``, and (optionally) whitenoise set
up as its documentation says (its middleware after ``SecurityMiddleware``, and
``whitenoise.runserver_nostatic`` so that it serves static files in development too).

``build(target)`` returns the project's directory; its ``settings.py`` reads two variables, so
one tree serves both sides of a comparison:

- ``SITE_ASGISERVE=0`` leaves ``django_asgiserve`` out of ``INSTALLED_APPS``: ``runserver`` is
  Django's own (the oracle);
- ``SITE_DEBUG=0`` turns ``DEBUG`` off.

Files to fetch: ``STATIC_FILE`` (under ``STATIC_URL``), ``MEDIA_FILE`` (under ``MEDIA_URL``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.polling import DEADLINE
from tests.helpers.server import child_environ

STATIC_FILE = "/static/pages/site.css"
MEDIA_FILE = "/media/uploads/notes.txt"
#: The app's views: sync ones only.
VIEWS = """from django.http import HttpResponse
from django.shortcuts import render


def home(request):
    return render(request, "pages/home.html")


def hello(request):
    return HttpResponse("hello", content_type="text/plain")
"""
TEMPLATE = """{% load static %}<!doctype html>
<html><head><link rel="stylesheet" href="{% static 'pages/site.css' %}"></head>
<body><p>home</p></body></html>
"""
URLS = """
from django.conf import settings
from django.conf.urls.static import static
from django.urls import path

from pages import views

urlpatterns += [  # noqa: F821 - startproject's list, above
    path("", views.home),
    path("hello/", views.hello),
]
urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
"""
SETTINGS = """
import os

DEBUG = os.environ.get("SITE_DEBUG", "1") != "0"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS += ["pages"]  # noqa: F821
if os.environ.get("SITE_ASGISERVE", "1") != "0":
    INSTALLED_APPS.insert(0, "django_asgiserve")  # noqa: F821 - above staticfiles
MEDIA_URL = "media/"
MEDIA_ROOT = BASE_DIR / "media"  # noqa: F821
STATIC_ROOT = BASE_DIR / "staticfiles"  # noqa: F821
"""
WHITENOISE = """
MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")  # noqa: F821
STATICFILES_AT = INSTALLED_APPS.index("django.contrib.staticfiles")  # noqa: F821
INSTALLED_APPS.insert(STATICFILES_AT, "whitenoise.runserver_nostatic")  # noqa: F821
"""


def run(args: list[str], cwd: Path) -> None:
    subprocess.run(
        args, cwd=cwd, env=child_environ(), check=True, capture_output=True, timeout=DEADLINE
    )


def build(target: Path, *, whitenoise: bool = False, name: str = "mysite") -> Path:
    """Make the project in ``target`` (created); its directory."""
    target.mkdir(parents=True)
    run([sys.executable, "-m", "django", "startproject", name, str(target)], cwd=target)
    run([sys.executable, "manage.py", "startapp", "pages"], cwd=target)
    pages = target / "pages"
    (pages / "views.py").write_text(VIEWS)
    (pages / "templates" / "pages").mkdir(parents=True)
    (pages / "templates" / "pages" / "home.html").write_text(TEMPLATE)
    (pages / "static" / "pages").mkdir(parents=True)
    (pages / "static" / "pages" / "site.css").write_text("body { color: #123456; }\n" * 200)
    (target / "media" / "uploads").mkdir(parents=True)
    (target / "media" / "uploads" / "notes.txt").write_text("notes\n" * 2000)
    package = target / name
    with (package / "urls.py").open("a") as urls:
        urls.write(URLS)
    with (package / "settings.py").open("a") as settings:
        settings.write(SETTINGS + (WHITENOISE if whitenoise else ""))
    return target
