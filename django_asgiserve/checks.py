"""System checks for the ``ASGISERVE`` setting (``asgiserve.E0xx``) and the app's position."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core import checks

from django_asgiserve import conf

APP = "django_asgiserve"
STATICFILES = "django.contrib.staticfiles"


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = [
        (checks.Warning if p.warning else checks.Error)(p.msg, hint=p.hint, id=p.id)
        for p in conf.problems()
    ]
    messages += check_app_order()
    return messages


def check_app_order() -> list[checks.CheckMessage]:
    # The registry's order is INSTALLED_APPS' order, with AppConfig paths resolved to app names.
    names = [app_config.name for app_config in apps.get_app_configs()]
    if not conf.raw().get("RUNSERVER", True) or STATICFILES not in names:
        return []
    if APP in names and names.index(APP) > names.index(STATICFILES):
        return [
            checks.Warning(
                f"{APP} is listed below {STATICFILES} in INSTALLED_APPS, so `runserver` is "
                "still Django's WSGI server.",
                hint=f"Move {APP!r} above {STATICFILES!r} to serve `runserver` over ASGI, or "
                "set ASGISERVE['RUNSERVER'] = False to silence this warning.",
                id="asgiserve.W001",
            )
        ]
    return []
