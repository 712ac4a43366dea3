"""``manage.py runserver``: asgiserve when ``ASGISERVE['RUNSERVER']`` is on, else Django's own.

Django picks the first app in ``INSTALLED_APPS`` that provides a command, so this override
applies only while ``django_asgiserve`` is listed above ``django.contrib.staticfiles``.
"""

from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand

from django_asgiserve import settings as serve_settings
from django_asgiserve.management.commands import asgiserve


class AsgiserveRunserver(asgiserve.Command):
    help = "Starts an ASGI development server (django-asgiserve), in place of runserver."


def chosen() -> type[BaseCommand]:
    """asgiserve's command, or the runserver Django would have run without this app."""
    if serve_settings.raw().get("RUNSERVER", True) is True:
        return AsgiserveRunserver
    if apps.is_installed("django.contrib.staticfiles"):
        from django.contrib.staticfiles.management.commands.runserver import (
            Command as StaticfilesRunserver,
        )

        return StaticfilesRunserver
    from django.core.management.commands.runserver import Command as DjangoRunserver

    return DjangoRunserver


Command = chosen()
