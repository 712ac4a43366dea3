"""A live ASGI server for tests: the project's ``ASGI_APPLICATION`` served in a thread of the
test process, on the test database.

It runs in the test process, as Django's ``LiveServerThread`` does, because Django's default
SQLite test database lives in memory there. The connections to in-memory SQLite databases are
shared with the server (``connections[alias] = conn`` once ``conn.inc_thread_sharing()`` allows
it); other databases are reached by the server's own connections to the test database, whose
name the test runner has already put in the settings. Django's connections are truly
thread-local and its ASGI handler runs sync code in a new thread per request (one
``ThreadSensitiveContext`` each), so the override is installed at the start of every request,
in the thread that request's sync code runs in: this module opens the outermost
``ThreadSensitiveContext`` itself, and Django's handler and ``sync_to_async`` use it.

The backends that can run this way are those whose ``serves_in_thread`` is true; the server is
the same backend class ``asgiserve`` serves with, on a socket bound here (port 0: a free one).
With ``https=True`` it serves HTTPS with a certificate from the local certificate authority of
``asgiserve --https`` (:mod:`django_asgiserve.https`), for pages that need a secure context.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import secrets
import socket
import ssl
import threading
import time
from asyncio import AbstractEventLoop
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from django_asgiserve.asgi import stack
from django_asgiserve.asgi.types import ASGIApp, Receive, Scope, Send
from django_asgiserve.live.backend import LiveServerError, choose_backend
from django_asgiserve.live.connections import in_memory_connections, share_connections
from django_asgiserve.process import worker
from django_asgiserve.run_config import DEVELOPMENT_GRACE, ServerConfig, TLSFiles

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from django_asgiserve.backends.base import Backend

__all__ = ["ASGILiveServer", "LiveServerError", "choose_backend"]

DEFAULT_HOST = "127.0.0.1"
#: Seconds to wait for the server to answer its first request, or to end once cancelled.
STARTUP_TIMEOUT = 30.0


def answer_probe(app: ASGIApp, path: str, serving: Callable[[AbstractEventLoop], None]) -> ASGIApp:
    """Answer ``path`` here (204) so start-up can tell the server serves, without the project
    seeing (or logging) the request; tell ``serving`` the loop the application runs on."""

    async def probed_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == path:
            serving(asyncio.get_running_loop())
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await app(scope, receive, send)

    return probed_app


def cancel_everything(loop: AbstractEventLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()


class ASGILiveServer:
    """The project's application served on ``host``:``port`` in a thread, until :meth:`stop`.

    ``str()`` and ``.url`` are its base URL, as with pytest-django's ``live_server``. With
    ``https``, it serves HTTPS and ``ca_file`` is the authority's certificate to verify it with.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        backend: str | None = None,
        *,
        https: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.backend_name = backend
        self.https = https
        #: With ``https``: the local authority's certificate (``ca.pem``), once started.
        self.ca_file: Path | None = None
        self._tls = TLSFiles("", "")
        self.backend: Backend | None = None
        self.error: BaseException | None = None
        self.shared: dict[str, BaseDatabaseWrapper] = {}
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._loop: AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.https else 'http'}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.url

    def __add__(self, other: str) -> str:
        return f"{self}{other}"

    def __repr__(self) -> str:
        name = self.backend.name if self.backend else "not started"
        return f"<ASGILiveServer {name} at {self.url}>"

    def start(self) -> None:
        """Bind, serve in a thread, and return once the server answers a request."""
        from django_asgiserve import settings as serve_settings

        backend_class = choose_backend(self.backend_name)
        if self.https:
            self._tls = self._certificate()
        self.shared = in_memory_connections()
        for conn in self.shared.values():
            conn.inc_thread_sharing()
        try:
            self._socket = self._listen()
            self.port = self._socket.getsockname()[1]
            probe = f"/__asgi_live_server_{secrets.token_hex(8)}__"
            app = self._application(probe)
            options = serve_settings.load().options.get(backend_class.name, {})
            self.backend = backend_class(
                ServerConfig(
                    backend=backend_class.name,
                    options=dict(options),
                    reload=False,
                    graceful_timeout=DEVELOPMENT_GRACE,
                    certfile=self._tls.certfile,
                    keyfile=self._tls.keyfile,
                )
            )
            # The backend adopts (and closes) the socket it serves: give it a copy.
            served = self._socket.dup()
            self._thread = threading.Thread(
                target=self._serve, args=(app, served), name="asgi-live-server", daemon=True
            )
            self._thread.start()
            self._wait_serving(probe)
        except BaseException:
            self.stop()
            raise

    def _certificate(self) -> TLSFiles:
        """The local authority's certificate for this host: ServerConfig's TLS fields."""
        from django_asgiserve.https.serving import HTTPSError, server_files

        try:
            issued = server_files([self.host])
        except HTTPSError as error:
            raise LiveServerError(str(error).replace("--https", "The HTTPS live server")) from None
        self.ca_file = issued.certfile.parent / "ca.pem"
        return TLSFiles(str(issued.certfile), str(issued.keyfile))

    def _listen(self) -> socket.socket:
        try:
            family = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)[0][0]
            return socket.create_server((self.host, self.port), family=family, backlog=128)
        except OSError as error:
            raise LiveServerError(
                f"The live server cannot listen on {self.host}:{self.port}: "
                f"{os.strerror(error.errno) if error.errno else error}."
            ) from None

    def _application(self, probe: str) -> ASGIApp:
        from django.apps import apps

        from django_asgiserve.asgi.static import StaticFiles

        # Django's own handler: the fast path's threads are not the request's thread-sensitive
        # one, where the test's shared connection is installed.
        app = worker.load_application(sync_fast_path=False)
        # As StaticLiveServerTestCase: the finders' files, whatever DEBUG is (tests run with
        # DEBUG off). Requests are not logged, as Django's live server does not log them.
        if apps.is_installed("django.contrib.staticfiles"):
            app = StaticFiles(app)
        return stack.answer_lifespan(
            answer_probe(share_connections(app, self.shared), probe, self._serving_on)
        )

    def _serving_on(self, loop: AbstractEventLoop) -> None:
        self._loop = loop

    def _serve(self, app: ASGIApp, served: socket.socket) -> None:
        assert self.backend is not None
        try:
            self.backend.serve(app, [served])
        except BaseException as error:  # SystemExit too: uvicorn exits when it cannot start
            self.error = error
        finally:
            with contextlib.suppress(OSError):
                served.close()
            from django.db import connections

            connections.close_all()

    def _wait_serving(self, probe: str) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert self._thread is not None
            if not self._thread.is_alive():
                raise LiveServerError(
                    f"The live server ({self.backend_name or 'auto'}) stopped at start-up: "
                    f"{self.error!r}"
                ) from self.error
            connection = self._connection()
            try:
                connection.request("GET", probe)
                if connection.getresponse().status == 204:
                    return
            except OSError:
                pass
            finally:
                connection.close()
            if time.monotonic() > deadline:
                raise LiveServerError(f"The live server did not answer within {STARTUP_TIMEOUT}s.")
            time.sleep(0.02)

    def _connection(self) -> http.client.HTTPConnection:
        if self.ca_file is None:
            return http.client.HTTPConnection(self.host, self.port, timeout=5)
        context = ssl.create_default_context(cafile=self.ca_file)
        return http.client.HTTPSConnection(self.host, self.port, timeout=5, context=context)

    def stop(self) -> None:
        """Stop serving (open connections get the grace period, then are dropped) and close the
        socket; LiveServerError if the server's thread does not end."""
        stuck = False
        if self.backend is not None:
            self.backend.stop()
        if self._thread is not None:
            self._thread.join(DEVELOPMENT_GRACE + worker.HARD_STOP_MARGIN)
            if self._thread.is_alive() and self._loop is not None:
                # Some servers wait for connections a test left open beyond their grace period
                # (hypercorn on Python 3.12 and later, whose asyncio Server.wait_closed() waits
                # for every connection); a worker would end itself there, this thread cannot.
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    self._loop.call_soon_threadsafe(cancel_everything, self._loop)
                self._thread.join(STARTUP_TIMEOUT)
            stuck = self._thread.is_alive()
            self._thread = None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        for conn in self.shared.values():
            conn.dec_thread_sharing()
        self.shared = {}
        if stuck:
            raise LiveServerError("The live server's thread did not stop.")
