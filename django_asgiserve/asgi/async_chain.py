"""The async-view path: Django's async middleware chain in one thread hop per run of sync hooks.

``ASGIHandler`` serves an async view (and everything the sync fast path leaves to it) through the
chain ``load_middleware(is_async=True)`` builds: each ``MiddlewareMixin`` in async mode runs its
``process_request`` and its ``process_response`` in a ``sync_to_async(thread_sensitive=True)`` hop
of their own, and each ``process_view`` in another: 13 hops for Django's default middleware, each
a round trip between the event loop and the request's thread. When every layer of that chain is a
plain ``MiddlewareMixin`` (hooks only: neither ``__call__`` nor ``__acall__`` of its own, no
coroutine ``process_request``/``process_response``), :func:`merge` puts a :class:`MergedChain` in
its place, which calls the same hooks of the same instances, in the same order, in the same
thread (the request's thread-sensitive one):

* the ``process_request`` hooks down to the first that returns a response or raises, in one hop;
* the view part with Django's own ``_get_response_async`` and its exception conversion, on the
  event loop (an async view is awaited there), with each run of consecutive sync
  ``process_view`` hooks in one hop (an async ``process_view`` is awaited between runs);
* the ``process_response`` hooks back out, in one hop.

An exception in a hook is converted where each layer's ``convert_exception_to_response`` would
convert it: ``response_for_exception`` (in a thread that is not the request's, as Django calls
it), seen by the layers outside the one that raised. A cancelled hop (the client went away) runs
no further hook of its run, as cancelling Django's chain runs no further hop. Any other
``MIDDLEWARE`` keeps Django's chain exactly; so do ``process_template_response`` and
``process_exception`` hooks (the latter already run in one hop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.core.handlers import exception
from django.utils.deprecation import MiddlewareMixin

from django_asgiserve.upstream import django as django_internals

#: The hooks a merged layer's own chain step calls; coroutine ones are Django's error to keep.
STEP_HOOKS = ("process_request", "process_response")


class Run:
    """One hop's state, shared with the thread that runs it: which layer it is at, and whether
    the task awaiting it was cancelled (then the thread starts no further hook)."""

    __slots__ = ("at", "stopped")

    def __init__(self) -> None:
        self.at = 0
        self.stopped = False


async def hop(func: Callable[..., Any], run: Run, *args: Any) -> Any:
    """``func(run, *args)`` in the request's thread-sensitive thread: one ``sync_to_async`` hop."""
    try:
        return await sync_to_async(func, thread_sensitive=True)(run, *args)
    except asyncio.CancelledError:
        # Like a cancelled hop of Django's chain, the thread finishes the hook it is in.
        run.stopped = True
        raise


def is_plain(layer: object) -> bool:
    """Whether ``layer`` is a ``MiddlewareMixin`` in async mode whose chain step is Django's."""
    kind = type(layer)
    return (
        isinstance(layer, MiddlewareMixin)
        and getattr(layer, "async_mode", False) is True
        and kind.__call__ is MiddlewareMixin.__call__
        and getattr(kind, "__acall__", None) is getattr(MiddlewareMixin, "__acall__", None)
        and not any(iscoroutinefunction(getattr(layer, name, None)) for name in STEP_HOOKS)
    )


def layers_of(handler: Any) -> tuple[list[MiddlewareMixin], Callable[..., Any]] | None:
    """The layers of ``handler``'s async chain, outermost first, and its innermost link (the
    view part inside its exception conversion), when every layer is plain; else ``None``.

    The chain is walked through what ``convert_exception_to_response`` wraps (``__wrapped__``)
    and each layer's ``get_response``; anything else on the way means Django adapted it.
    """
    layers: list[MiddlewareMixin] = []
    link = django_internals.middleware_chain(handler)
    while link is not None and iscoroutinefunction(link):
        wrapped = getattr(link, "__wrapped__", None)
        if wrapped is not None and django_internals.is_view_part(handler, wrapped):
            return layers, link
        if wrapped is None or not is_plain(wrapped):
            return None
        layers.append(wrapped)
        link = wrapped.get_response
    return None


class ViewHooks:
    """Consecutive sync ``process_view`` hooks as one entry of ``_view_middleware``: the first
    response one returns, as ``_get_response_async``'s loop would stop at it, in one hop."""

    def __init__(self, hooks: Sequence[Callable[..., Any]]) -> None:
        self.hooks = hooks

    async def __call__(self, request: Any, callback: Any, args: Any, kwargs: Any) -> Any:
        return await hop(self.run, Run(), request, callback, args, kwargs)

    def run(self, run: Run, request: Any, callback: Any, args: Any, kwargs: Any) -> Any:
        response = None
        for hook in self.hooks:
            if run.stopped:
                break
            response = hook(request, callback, args, kwargs)
            if response:
                break
        return response


def view_hooks(layers: Sequence[MiddlewareMixin]) -> list[Callable[..., Any]]:
    """``_view_middleware`` in Django's order (outermost first), each run of sync hooks merged."""
    merged: list[Callable[..., Any]] = []
    sync_run: list[Callable[..., Any]] = []
    for layer in layers:
        if not hasattr(layer, "process_view"):
            continue
        hook = layer.process_view
        if iscoroutinefunction(hook):
            if sync_run:
                merged.append(ViewHooks(sync_run))
                sync_run = []
            merged.append(hook)  # awaited on the loop, as Django leaves it
        else:
            sync_run.append(hook)
    if sync_run:
        merged.append(ViewHooks(sync_run))
    return merged


class MergedChain:
    """The async chain of plain ``MiddlewareMixin`` layers in one hop per run of hooks."""

    def __init__(self, layers: Sequence[MiddlewareMixin], view: Callable[..., Any]) -> None:
        self.layers = layers
        self.view = view  # Django's view part, which converts its own exceptions
        # Django's chain takes no hop for a layer without the hook: nor does a run without any.
        self.any_request = any(hasattr(layer, "process_request") for layer in layers)
        self.first_response = next(
            (i for i, layer in enumerate(layers) if hasattr(layer, "process_response")), None
        )
        markcoroutinefunction(self)  # what Django's chain is, for anyone who asks

    async def __call__(self, request: Any) -> Any:
        # Index of the innermost layer whose process_response is due, going out.
        due = len(self.layers) - 1
        run = Run()
        try:
            response = await hop(self.requests, run, request) if self.any_request else None
        except Exception as exc:
            due, response = await self.converted(request, run.at, exc)
        else:
            if response:
                due = run.at  # a short circuit: its own process_response, then outwards
            else:
                try:
                    response = await self.view(request)
                except Exception as exc:  # the view part's own conversion failed
                    due, response = await self.converted(request, due, exc)
        while self.first_response is not None and due >= self.first_response:
            run = Run()
            try:
                return await hop(self.responses, run, request, response, due)
            except Exception as exc:
                due, response = await self.converted(request, run.at, exc)
        return response

    def requests(self, run: Run, request: Any) -> Any:
        """Each layer's ``process_request``, outermost first, until one answers (or raises)."""
        for index, layer in enumerate(self.layers):
            if run.stopped:
                return None
            run.at = index
            if hasattr(layer, "process_request"):
                response = layer.process_request(request)
                if response:
                    return response
        return None

    def responses(self, run: Run, request: Any, response: Any, due: int) -> Any:
        """Each layer's ``process_response`` from ``due`` outwards."""
        for index in range(due, -1, -1):
            if run.stopped:
                break
            run.at = index
            layer = self.layers[index]
            if hasattr(layer, "process_response"):
                response = layer.process_response(request, response)
        return response

    @staticmethod
    async def converted(request: Any, index: int, exc: Exception) -> tuple[int, Any]:
        """Convert ``exc``, raised inside layer ``index``, as that layer's
        ``convert_exception_to_response`` would: the response, and the next layer out, whose
        ``process_response`` is due. A conversion that raises is the next layer out's exception,
        as in Django's chain. Called in the ``except`` block, which the conversion reads
        (``sys.exc_info()``).
        """
        while True:
            try:
                response = await sync_to_async(
                    exception.response_for_exception, thread_sensitive=False
                )(request, exc)
            except Exception as again:
                if index == 0:
                    raise
                index, exc = index - 1, again
            else:
                return index - 1, response


def merge(handler: Any) -> bool:
    """Replace ``handler``'s async chain (built by ``load_middleware(is_async=True)``) with a
    :class:`MergedChain` when every layer is plain; whether it did."""
    found = layers_of(handler)
    if not found or not found[0]:
        return False
    layers, view = found
    merged_view_hooks = view_hooks(layers)
    hooks = sum(len(h.hooks) if isinstance(h, ViewHooks) else 1 for h in merged_view_hooks)
    if hooks != django_internals.view_middleware_count(handler):
        return False  # not the hooks Django collected: leave its chain alone
    django_internals.replace_chain(handler, MergedChain(layers, view), merged_view_hooks)
    return True
