"""What asgiserve relies on in Django beyond its documented API, probed in the command before
it serves (and once in any other process that asks, such as a preloader).

Relied on, why, since which Django, and what happens without it:

``BaseHandler._middleware_chain``, ``_view_middleware``, ``_get_response_async``
    the async path merges a chain of plain ``MiddlewareMixin`` layers into one thread hop per
    run of hooks (``asgi/async_chain.py``), recognising Django's view part by the
    ``__wrapped__`` that ``convert_exception_to_response`` sets. Since 3.1. Without: Django's
    own chain, a hop per hook (a warning).
``autoreload.check_errors``, ``autoreload._error_files``
    fixing the file that failed to import reloads the worker. Since 1.7. Without: asgiserve
    records those files itself (a note at verbosity 2).
``ASGIHandler``'s ``handle``, ``read_body``, ``create_request`` and more
    the sync fast path is Django's ``ASGIHandler`` serving a sync view in one thread hop, also
    with ``listen_for_disconnect``, ``run_get_response``, ``send_response``, ``chunk_size``;
    it replaces ``django.core.asgi.get_asgi_application`` to be built (``asgi/handler.py``).
    Since 5.0. Without: Django's own ``ASGIHandler``, no fast path and no request threads (a
    warning).
``django.core.handlers.asgi.get_script_prefix``
    the fast path's ``path_info``, as ``ASGIRequest`` computes it. Since 3.0. Without:
    ``FORCE_SCRIPT_NAME``, else the scope's ``root_path`` (a note).
``HttpResponseBase._handler_class``
    ``request_finished`` is sent by the handler's class, as Django's handlers send it. Since
    1.x. Without: sent by ``None`` (a note).
``StaticFilesHandlerMixin.serve``, ``file_path``, the finders' ``storages``
    static files are streamed from the static roots, a path out of them is a 404 and a symlink
    out of them refused (``asgi/static.py``). Since 1.x. Without: Django's own
    ``ASGIStaticFilesHandler`` serves them (a warning).
"""

from __future__ import annotations

import functools
import inspect
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from asgiref.sync import iscoroutinefunction

from django_asgiserve.upstream.probing import (
    Check,
    Findings,
    Reliance,
    Upstream,
    mentions,
    run_checks,
)

UPSTREAM = Upstream("Django", "django", lowest="5.2", newest="6.1")

MIDDLEWARE_CHAIN = Reliance(
    "BaseHandler._middleware_chain, _view_middleware and _get_response_async",
    since="3.1",
    why="the async path merges a chain of plain MiddlewareMixin layers into one thread hop per "
    "run of hooks",
    fallback="the async path keeps Django's chain, a thread hop per hook",
)
ERROR_FILES = Reliance(
    "django.utils.autoreload.check_errors and _error_files",
    since="1.7",
    why="fixing the file that failed to import reloads the worker",
    fallback="asgiserve records the files that fail to import itself",
    loses=False,
)
ASGI_HANDLER = Reliance(
    "ASGIHandler.handle, read_body, create_request, listen_for_disconnect, run_get_response, "
    "send_response and chunk_size",
    since="5.0",
    why="the sync fast path is Django's ASGIHandler serving a sync view in one thread hop",
    fallback="Django's own ASGIHandler serves, with neither the sync fast path nor the request "
    "threads (SYNC_FAST_PATH is off)",
)
SCRIPT_PREFIX = Reliance(
    "django.core.handlers.asgi.get_script_prefix",
    since="3.0",
    why="the sync fast path computes path_info as ASGIRequest does",
    fallback="the prefix is FORCE_SCRIPT_NAME, else the scope's root_path",
    loses=False,
)
HANDLER_CLASS = Reliance(
    "HttpResponseBase._handler_class",
    since="1.x",
    why="request_finished is sent by the handler class on the sync fast path, as by Django's",
    fallback="request_finished is sent with the sender None",
    loses=False,
)
STATIC_HANDLER = Reliance(
    "StaticFilesHandlerMixin.serve and file_path, and the staticfiles finders' storages",
    since="1.x",
    why="static files are streamed from the static roots, a path out of them is a 404 and a "
    "symlink out of them is refused",
    fallback="Django's own ASGIStaticFilesHandler serves static files (each read whole into "
    "memory, symlinks followed)",
)

#: The files that failed to import when Django's own record is missing (ERROR_FILES' fallback).
_own_error_files: list[str] = []


def has_merged_chain_hooks() -> bool:
    from django.core.handlers.base import BaseHandler
    from django.core.handlers.exception import convert_exception_to_response
    from django.http import HttpRequest, HttpResponse, HttpResponseBase

    async def view_part(request: HttpRequest) -> HttpResponseBase:
        return HttpResponse()

    converted = convert_exception_to_response(view_part)
    return (
        hasattr(BaseHandler, "_middleware_chain")
        and hasattr(BaseHandler, "_view_middleware")
        and iscoroutinefunction(getattr(BaseHandler, "_get_response_async", None))
        and getattr(converted, "__wrapped__", None) is view_part
    )


def has_error_files() -> bool:
    from django.utils import autoreload

    return callable(getattr(autoreload, "check_errors", None)) and isinstance(
        getattr(autoreload, "_error_files", None), list
    )


#: ASGIHandler's methods the fast path calls or overrides, each with the parameters it passes.
HANDLER_METHODS: Mapping[str, tuple[str, ...]] = {
    "handle": ("scope", "receive", "send"),
    "read_body": ("receive",),
    "create_request": ("scope", "body_file"),
    "listen_for_disconnect": ("receive",),
    "run_get_response": ("request",),
    "send_response": ("response", "send"),
}


def has_asgi_handler_hooks() -> bool:
    import django.core.asgi
    from django.core.handlers.asgi import ASGIHandler

    for name, parameters in HANDLER_METHODS.items():
        method = getattr(ASGIHandler, name)
        if tuple(inspect.signature(method).parameters)[1:] != parameters:
            return False
    return isinstance(ASGIHandler.chunk_size, int) and callable(
        django.core.asgi.get_asgi_application
    )


def has_script_prefix() -> bool:
    from django.core.handlers import asgi

    return callable(getattr(asgi, "get_script_prefix", None))


def has_handler_class() -> bool:
    from django.http import HttpResponseBase

    return mentions(HttpResponseBase.close.__code__, "_handler_class")


def has_static_hooks() -> bool:
    from django.contrib.staticfiles import finders
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    return (
        callable(getattr(ASGIStaticFilesHandler, "serve", None))
        and callable(getattr(ASGIStaticFilesHandler, "file_path", None))
        and mentions(finders.FileSystemFinder.__init__.__code__, "storages")
        and mentions(finders.AppDirectoriesFinder.__init__.__code__, "storages")
    )


CHECKS: Mapping[Reliance, Check] = {
    MIDDLEWARE_CHAIN: has_merged_chain_hooks,
    ERROR_FILES: has_error_files,
    ASGI_HANDLER: has_asgi_handler_hooks,
    SCRIPT_PREFIX: has_script_prefix,
    HANDLER_CLASS: has_handler_class,
    STATIC_HANDLER: has_static_hooks,
}


@functools.cache
def probe() -> Findings:
    """What holds of the above in the Django installed (once per process)."""
    return run_checks(UPSTREAM, CHECKS)


# -- the accessors the package calls --------------------------------------------------------


def middleware_chain(handler: Any) -> Callable[..., Any] | None:
    """The async chain ``load_middleware(is_async=True)`` built, when it may be merged."""
    if not probe().holds(MIDDLEWARE_CHAIN):
        return None
    chain: Callable[..., Any] | None = handler._middleware_chain
    return chain


def is_view_part(handler: Any, wrapped: object) -> bool:
    """Whether ``wrapped`` is the chain's innermost link: Django's view part."""
    return bool(wrapped == handler._get_response_async)


def view_middleware_count(handler: Any) -> int:
    return len(handler._view_middleware)


def replace_chain(
    handler: Any, chain: Callable[..., Any], view_hooks: list[Callable[..., Any]]
) -> None:
    handler._view_middleware = view_hooks
    handler._middleware_chain = chain


def check_errors(fn: Callable[[], object]) -> Callable[[], None]:
    """``fn`` recording the file it fails to import in, as Django's reloader records it."""
    from django.utils import autoreload

    if probe().holds(ERROR_FILES):
        return autoreload.check_errors(fn)

    def recording() -> None:
        try:
            fn()
        except Exception as error:
            if (filename := failing_file(error)) and filename not in _own_error_files:
                _own_error_files.append(filename)
            raise

    return recording


def failing_file(error: BaseException) -> str | None:
    """The file an import failed in: a syntax error's own, else the innermost frame's."""
    if isinstance(error, SyntaxError) and error.filename:
        return error.filename
    frames = traceback.extract_tb(error.__traceback__)
    return frames[-1].filename if frames else None


def error_files() -> list[str]:
    """The files that failed to import in this process (fixing one calls for a reload)."""
    from django.utils import autoreload

    django_files: Iterable[str] = getattr(autoreload, "_error_files", None) or ()
    return [*django_files, *_own_error_files]


def fast_path_supported() -> bool:
    return probe().holds(ASGI_HANDLER)


def script_prefix(scope: Mapping[str, Any]) -> str:
    """The script prefix ``ASGIRequest`` uses for ``scope``."""
    if probe().holds(SCRIPT_PREFIX):
        from django.core.handlers.asgi import get_script_prefix

        prefix: str = get_script_prefix(scope)
        return prefix
    from django.conf import settings

    return str(settings.FORCE_SCRIPT_NAME or scope.get("root_path", "") or "")


def set_handler_class(response: Any, handler_class: type) -> None:
    """What Django's handlers do to a response: ``request_finished`` is sent by that class."""
    if probe().holds(HANDLER_CLASS):
        response._handler_class = handler_class


def static_hooks_supported() -> bool:
    return probe().holds(STATIC_HANDLER)


def finder_roots(finder: Any) -> list[str]:
    """The directories a staticfiles finder serves from (none known for a finder of another
    kind than Django's)."""
    storages: Mapping[str, Any] = getattr(finder, "storages", None) or {}
    return [
        location
        for storage in storages.values()
        if (location := getattr(storage, "location", None))
    ]
