"""System checks for the ``ASGISERVE`` setting (``asgiserve.E0xx``) and the app's position.

Most are registered with Django and run in every command. The serving checks (the backend is
installed, ``asgiserve.E004``; a process-local channel layer across workers, ``asgiserve.W002``)
concern only ``asgiserve``/``runserver``, which runs them itself (:func:`serving_report`): a
migration job or a worker image without the server runs ``migrate`` and ``check`` as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.management.color import Style

from django_asgiserve import settings as serve_settings

if TYPE_CHECKING:
    from django.apps import AppConfig

APP = "django_asgiserve"
STATICFILES = "django.contrib.staticfiles"
IN_MEMORY_LAYER = "channels.layers.InMemoryChannelLayer"


@checks.register()
def check_settings(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: object
) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = [
        checks.Error(p.msg, hint=p.hint, id=p.id) for p in serve_settings.problems()
    ]
    messages += check_app_order()
    return messages


def check_app_order() -> list[checks.CheckMessage]:
    # The registry's order is INSTALLED_APPS' order, with AppConfig paths resolved to app names.
    names = [app_config.name for app_config in apps.get_app_configs()]
    if not serve_settings.raw().get("RUNSERVER", True) or STATICFILES not in names:
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


def backend_installed(name: str) -> list[checks.CheckMessage]:
    """``asgiserve.E004`` unless the backend ``name`` (or any, for ``auto``) is installed."""
    return [
        checks.Error(p.msg, hint=p.hint, id=p.id) for p in serve_settings.backend_problems(name)
    ]


def channel_layers(workers: int) -> list[checks.CheckMessage]:
    """``asgiserve.W002`` for each Channels layer kept in one process's memory while several
    processes serve: a group message sent in one worker never reaches the others' consumers."""
    if workers < 2:
        return []
    layers = getattr(settings, "CHANNEL_LAYERS", None)
    if not isinstance(layers, dict):
        return []
    return [
        checks.Warning(
            f"CHANNEL_LAYERS[{alias!r}] is {IN_MEMORY_LAYER.rpartition('.')[2]}, kept in each "
            f"process's memory, and {workers} worker processes serve: group messages never "
            "cross processes, so a consumer in one worker misses what is sent in another.",
            hint="Use a layer shared by every process, such as channels-redis "
            "(channels_redis.core.RedisChannelLayer), or serve with one worker.",
            id="asgiserve.W002",
        )
        for alias, layer in layers.items()
        if isinstance(layer, dict) and layer.get("BACKEND") == IN_MEMORY_LAYER
    ]


def serving_report(messages: list[checks.CheckMessage], style: Style) -> tuple[str, bool]:
    """The serving checks' messages as Django's system checks print them, and whether any is
    an error. Those named in ``SILENCED_SYSTEM_CHECKS`` are left out; ``("", False)`` when none
    remains."""
    silenced = [m for m in messages if m.is_silenced()]
    shown = [m for m in messages if not m.is_silenced()]
    if not shown:
        return "", False
    errors = [m for m in shown if m.is_serious()]
    warnings = [m for m in shown if not m.is_serious()]
    header = "System check identified some issues:\n"
    body = ""
    for title, group, paint in (
        ("ERRORS", errors, style.ERROR),
        ("WARNINGS", warnings, style.WARNING),
    ):
        if group:
            body += f"\n{title}:\n" + "\n".join(paint(str(m)) for m in group) + "\n"
    count = "1 issue" if len(shown) == 1 else f"{len(shown)} issues"
    footer = f"\nSystem check identified {count} ({len(silenced)} silenced)."
    if errors:
        header = style.ERROR(f"SystemCheckError: {header}")
    return header + body + footer, bool(errors)
