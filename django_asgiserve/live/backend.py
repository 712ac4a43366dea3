"""Which backend serves the tests' live server: one that can serve in a thread of the test
process, chosen by name, by ``ASGISERVE["TEST_BACKEND"]``, or the first installed."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from django_asgiserve import backends

if TYPE_CHECKING:
    from django_asgiserve.backends.base import Backend


class LiveServerError(Exception):
    """The live server cannot be started (a backend that cannot serve in a thread, say)."""


def choose_backend(name: str | None = None) -> type[Backend]:
    """The backend to serve tests with: ``name`` when given (and not ``"auto"``), else
    ``ASGISERVE["TEST_BACKEND"]``, else ``ASGISERVE["BACKEND"]`` when it can serve in a thread,
    else the first installed of those that can."""
    from django.core.exceptions import ImproperlyConfigured

    from django_asgiserve import settings as settings_module

    try:
        serve_settings = settings_module.load()
    except ImproperlyConfigured as error:
        raise LiveServerError(str(error)) from None
    in_thread = backends.in_thread_names()
    chosen = name if name and name != "auto" else serve_settings.test_backend
    if chosen == "auto" and serve_settings.backend in in_thread:
        with contextlib.suppress(backends.BackendError):
            return backends.get(serve_settings.backend)
    if chosen == "auto":
        for candidate in in_thread:
            if backends.backend_class(candidate).is_installed():
                return backends.backend_class(candidate)
        raise LiveServerError(
            "No ASGI server that can serve tests in the test process is installed.\n"
            f'HINT: Install one of {", ".join(in_thread)}: pip install "django-asgiserve[uvicorn]"'
        )
    why = backends.why_not_in_thread(chosen)
    if why is not None:
        raise LiveServerError(
            f"The live server's backend {why}.\nHINT: Choose one of: auto, {', '.join(in_thread)}."
        )
    try:
        return backends.get(chosen)
    except backends.BackendError as error:
        hint = f"\nHINT: {error.hint}" if error.hint else ""
        raise LiveServerError(f"{error}{hint}") from None
