"""Which middleware is sync-only, and so costs a thread switch per request under ASGI.

Django's ``BaseHandler.load_middleware`` reads ``sync_capable`` and ``async_capable`` on each
middleware class or factory: one that is not ``async_capable`` makes the async handler adapt the
chain to sync around it, with ``sync_to_async``, on every request it serves. With the sync fast
path a sync view's whole chain runs in one hop anyway (``asgi/handler.py``): then only requests
to async views pay, and a project without one has nothing to hear about.
"""

from __future__ import annotations

from typing import Any


def sync_only_middleware() -> list[str]:
    """The dotted paths in ``settings.MIDDLEWARE`` that cannot run as async."""
    return [
        path
        for path, middleware in _middleware()
        if not getattr(middleware, "async_capable", False)
    ]


def _middleware() -> list[tuple[str, Any]]:
    from django.conf import settings
    from django.utils.module_loading import import_string

    found = []
    for path in getattr(settings, "MIDDLEWARE", None) or []:
        try:
            found.append((path, import_string(path)))
        except ImportError:
            continue  # Django's own start-up reports it
    return found


def has_async_view() -> bool | None:
    """Whether the root URLconf routes to an async view (a coroutine function, or a class-based
    view that Django marks as one); ``None`` when the URLconf cannot be loaded (the worker
    shows that error)."""
    from asgiref.sync import iscoroutinefunction
    from django.urls import URLPattern, URLResolver, get_resolver

    try:
        entries = list(get_resolver().url_patterns)
    except Exception:
        return None
    while entries:
        entry = entries.pop()
        if isinstance(entry, URLResolver):
            try:
                entries.extend(entry.url_patterns)
            except Exception:
                return None
        elif isinstance(entry, URLPattern) and iscoroutinefunction(entry.callback):
            return True
    return False


def report() -> str:
    """One line naming the sync-only middleware, or ``""`` when no request pays for it: every
    middleware can run as async, or the sync fast path serves a project without async views."""
    from django_asgiserve import settings as serve_settings

    paths = sync_only_middleware()
    if not paths:
        return ""
    # An async-only middleware keeps every request on Django's own path (asgi/handler.py).
    fast_path = serve_settings.load().sync_fast_path and all(
        getattr(middleware, "sync_capable", True) for _path, middleware in _middleware()
    )
    if fast_path and not has_async_view():
        return ""
    noun = "middleware is" if len(paths) == 1 else "middleware are"
    which = "request to an async view" if fast_path else "request"
    return (
        f"Sync-only {noun} adding a thread switch to every {which}: {', '.join(paths)} "
        "(see Django's 'Asynchronous support' for async_capable middleware)."
    )
