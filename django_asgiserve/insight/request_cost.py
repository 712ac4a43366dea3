"""What each request cost: its duration and, with DEBUG, its database queries and their time.

The request-log layer opens a :class:`RequestCost` in a context variable for each request; an
execute wrapper that every database connection gets (through ``connection_created``) adds each
query to the cost of the request whose context it runs in. asgiref's ``sync_to_async`` runs
sync code in a copy of the caller's context, so queries in sync views, in ``sync_to_async``
calls and in the async ORM count for the request that made them, however many run at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper


@dataclass
class RequestCost:
    started: float = field(default_factory=time.perf_counter)
    queries: int = 0
    query_seconds: float = 0.0
    counts_queries: bool = False

    def summary(self) -> str:
        """`` (12 ms, 3 queries in 1.4 ms)`` for the request log line."""
        spent = f"{(time.perf_counter() - self.started) * 1000:.0f} ms"
        if self.counts_queries:
            noun = "query" if self.queries == 1 else "queries"
            spent += f", {self.queries} {noun}"
            if self.queries:
                spent += f" in {self.query_seconds * 1000:.1f} ms"
        return f" ({spent})"


current: ContextVar[RequestCost | None] = ContextVar("asgiserve_request_cost", default=None)
#: Whether queries are counted in this process (DEBUG on, extras on): set by :func:`install`.
counting_queries = False


def begin() -> Token[RequestCost | None]:
    return current.set(RequestCost(counts_queries=counting_queries))


def end(token: Token[RequestCost | None]) -> str:
    cost = current.get()
    current.reset(token)
    return cost.summary() if cost is not None else ""


def count_query(
    execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    """A Django execute wrapper that adds the query to the current request's cost."""
    cost = current.get()
    if cost is None:
        return execute(sql, params, many, context)
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        cost.query_seconds += time.perf_counter() - started
        cost.queries += len(params) if many and isinstance(params, list | tuple) else 1


def wrap_connection(connection: BaseDatabaseWrapper, **_kwargs: Any) -> None:
    if count_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(count_query)


def install(*, debug: bool) -> None:
    """Count queries on every connection (with DEBUG on, as Django records them then)."""
    global counting_queries
    if not debug:
        return
    from django.db import connections
    from django.db.backends.signals import connection_created

    counting_queries = True
    connection_created.connect(wrap_connection, dispatch_uid="asgiserve-request-cost")
    for connection in connections.all(initialized_only=True):
        wrap_connection(connection)
