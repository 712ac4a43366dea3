"""Middleware for the async-safety demo (one sync-only, one async-capable), and one that fails
on one path (for --pdb)."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.utils.decorators import sync_and_async_middleware


def sync_only_middleware(get_response):
    """A plain function middleware: Django treats it as sync-only."""

    def middleware(request):
        return get_response(request)

    return middleware


@sync_and_async_middleware
def both_ways_middleware(get_response):
    """Async-capable: runs without a thread switch under ASGI."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            return await get_response(request)

        markcoroutinefunction(middleware)
    else:

        def middleware(request):
            return get_response(request)

    return middleware


def failing_middleware(get_response):
    """Raises on ``/fail-in-middleware/``: an unhandled exception outside any view."""

    def middleware(request):
        if request.path == "/fail-in-middleware/":
            reason = "refused by the middleware"
            raise ValueError(reason)
        return get_response(request)

    return middleware
