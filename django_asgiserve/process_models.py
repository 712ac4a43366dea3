"""Which process model a run uses (``--process-model`` over ``ASGISERVE["PROCESS_MODEL"]``
over the platform's default, see :mod:`platforms`), and the backends and options a platform
cannot run: each a ``CommandError`` in the command's words."""

from __future__ import annotations

from typing import TypedDict

from django.core.management.base import CommandError

from django_asgiserve import backends, platforms


class ProcessModelOptions(TypedDict):
    process_model: str
    process_model_forced: bool


def choose(
    option: str | None, setting: str | None, backend: str, *, metrics: bool = False
) -> ProcessModelOptions:
    """The run's process model for ``backend`` (``metrics``: with ``--metrics``); ``option`` and
    ``setting`` are checked by their rule already (:mod:`values`)."""
    check_backend_runs_here(backend)
    if metrics and platforms.is_windows():
        raise CommandError(
            "--metrics is not available on Windows: its board, shared by the workers, needs "
            "POSIX file locks and inherited descriptors."
        )
    asked = option or setting
    if asked == platforms.FORK and not platforms.can_fork():
        raise CommandError(
            "--process-model fork needs os.fork, which this platform does not have: "
            "use --process-model spawn (the default here)."
        )
    return {
        "process_model": asked or platforms.default_process_model(),
        "process_model_forced": asked is not None,
    }


def check_backend_runs_here(name: str) -> None:
    """A ``CommandError`` naming the backends that do run here, when ``name`` does not."""
    backend = backends.backend_class(name)
    if platforms.is_windows() and not backend.runs_on_windows:
        able = [n for n in backends.NAMES if backends.backend_class(n).runs_on_windows]
        raise CommandError(
            f"The {name} backend does not run on Windows (it needs fork). Use one of: "
            f"{', '.join(able)}."
        )
