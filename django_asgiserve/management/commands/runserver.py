"""``manage.py runserver``: asgiserve when ``ASGISERVE['RUNSERVER']`` is on, else Django's own.

Django picks the first app in ``INSTALLED_APPS`` that provides a command, so this override
applies only while ``django_asgiserve`` is listed above ``django.contrib.staticfiles``.
"""

from __future__ import annotations

from django.apps import apps

from django_asgiserve import settings as serve_settings
from django_asgiserve.management.commands import asgiserve

if serve_settings.raw().get("RUNSERVER", True) is True:

    class Command(asgiserve.Command):
        help = "Starts an ASGI development server (django-asgiserve), in place of runserver."

elif apps.is_installed("django.contrib.staticfiles"):
    from django.contrib.staticfiles.management.commands.runserver import (  # type: ignore[no-redef]
        Command as Command,
    )
else:
    from django.core.management.commands.runserver import (  # type: ignore[no-redef]
        Command as Command,
    )
