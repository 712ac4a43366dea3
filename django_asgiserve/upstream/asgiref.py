"""What asgiserve relies on in asgiref beyond its documented API, probed in the command before it
serves (and once in any other process that asks).

Relied on, why, since which asgiref, and what happens without it:

``SyncToAsync.thread_sensitive_context``, ``SyncToAsync.context_to_thread_executor``
    the thread-sensitive calls a request makes on Django's async path (an async view's ORM
    calls) run in the request's own leased thread, so its database connection lives as under
    WSGI (``asgi/request_threads.py``). Since 3.3. Without: they run in the thread asgiref
    picks for the request's context, as under Django's own handler (a warning).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any

from django_asgiserve.upstream.probing import Check, Findings, Reliance, Upstream, run_checks

UPSTREAM = Upstream("asgiref", "asgiref", lowest="3.8.1", newest="3.13")

THREAD_EXECUTORS = Reliance(
    "SyncToAsync.thread_sensitive_context and SyncToAsync.context_to_thread_executor",
    since="3.3",
    why="the thread-sensitive calls of a request on Django's async path run in its leased "
    "thread, so its database connection lives as under WSGI",
    fallback="those calls run in the thread asgiref picks, as under Django's own handler",
)


def has_thread_executors() -> bool:
    from asgiref.sync import SyncToAsync

    return isinstance(
        getattr(SyncToAsync, "thread_sensitive_context", None), ContextVar
    ) and isinstance(getattr(SyncToAsync, "context_to_thread_executor", None), MutableMapping)


CHECKS: Mapping[Reliance, Check] = {THREAD_EXECUTORS: has_thread_executors}


@functools.cache
def probe() -> Findings:
    """What holds of the above in the asgiref installed (once per process)."""
    return run_checks(UPSTREAM, CHECKS)


def executors_of(context: object) -> MutableMapping[Any, Any] | None:
    """asgiref's map from a thread-sensitive context to the executor its calls run in, when
    ``context`` is the current one (an enclosing context decides the thread otherwise)."""
    if not probe().holds(THREAD_EXECUTORS):
        return None
    from asgiref.sync import SyncToAsync

    if SyncToAsync.thread_sensitive_context.get(None) is not context:
        return None
    executors: MutableMapping[Any, Any] = SyncToAsync.context_to_thread_executor
    return executors
