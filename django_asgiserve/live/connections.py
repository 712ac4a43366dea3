"""The test database's in-memory SQLite connections, shared with the live server's requests.

Only the thread that opened an in-memory SQLite database can reach it; the live server runs each
request's sync code in a thread of its own, so the connection is installed there at the start of
every request (see :mod:`server`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asgiref.sync import ThreadSensitiveContext, sync_to_async

from django_asgiserve.asgi.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper


def in_memory_connections() -> dict[str, BaseDatabaseWrapper]:
    """This thread's connections to in-memory SQLite databases, which only it can reach."""
    from django.db import connections
    from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper

    return {
        conn.alias: conn
        for conn in connections.all()
        if isinstance(conn, SQLiteWrapper) and conn.is_in_memory_db()
    }


def share_connections(app: ASGIApp, shared: dict[str, BaseDatabaseWrapper]) -> ASGIApp:
    """Run each connection's sync code in one thread that uses the ``shared`` connections."""
    from django.db import connections

    if not shared:
        return app

    def install() -> None:
        for alias, conn in shared.items():
            connections[alias] = conn

    async def sharing_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await app(scope, receive, send)
            return
        # The outermost context decides the thread: Django's handler and every thread-sensitive
        # sync_to_async inside (channels' database_sync_to_async is one) reuse it.
        async with ThreadSensitiveContext():
            await sync_to_async(install, thread_sensitive=True)()
            await app(scope, receive, send)

    return sharing_app
