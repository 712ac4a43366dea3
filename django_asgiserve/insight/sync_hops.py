"""Which middleware is sync-only, and so costs a thread switch per request under ASGI.

Django's ``BaseHandler.load_middleware`` reads ``sync_capable`` and ``async_capable`` on each
middleware class or factory: one that is not ``async_capable`` makes the async handler adapt the
chain to sync around it, with ``sync_to_async``, on every request.
"""

from __future__ import annotations


def sync_only_middleware() -> list[str]:
    """The dotted paths in ``settings.MIDDLEWARE`` that cannot run as async."""
    from django.conf import settings
    from django.utils.module_loading import import_string

    found = []
    for path in getattr(settings, "MIDDLEWARE", None) or []:
        try:
            middleware = import_string(path)
        except ImportError:
            continue  # Django's own start-up reports it
        if not getattr(middleware, "async_capable", False):
            found.append(path)
    return found


def report() -> str:
    """One line naming the sync-only middleware, or ``""`` when all can run as async."""
    from django_asgiserve import settings as serve_settings

    paths = sync_only_middleware()
    if not paths:
        return ""
    noun = "middleware is" if len(paths) == 1 else "middleware are"
    # With the sync fast path a sync view's whole chain runs in one hop anyway (asgi/handler.py).
    which = "request to an async view" if serve_settings.load().sync_fast_path else "request"
    return (
        f"Sync-only {noun} adding a thread switch to every {which}: {', '.join(paths)} "
        "(see Django's 'Asynchronous support' for async_capable middleware)."
    )
