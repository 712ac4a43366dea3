"""Django application config: registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig


class AsgiserveConfig(AppConfig):
    name = "django_asgiserve"
    verbose_name = "ASGI serve"

    def ready(self) -> None:
        from django_asgiserve import checks  # noqa: F401 - registers the checks
