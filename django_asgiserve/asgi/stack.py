"""The order of the ASGI layers the worker puts around the project's application, the same on
every backend: this module alone decides it.

From the outside in: the event-loop watchdog (with ``--loop-warn-ms``; see
:mod:`~django_asgiserve.insight.loop_watchdog`), which starts a watchdog for the loop of the
first call; the request count ``--max-requests`` reads (:mod:`served_count`); lifespan, answered
here (Django's handler rejects it, and backends would log warnings about that); then proxy
headers are applied (with ``--proxy-headers``; see :mod:`proxy_headers`), then requests are
logged in runserver's format (:mod:`access_log`), then open tabs follow reloads
(:mod:`tab_reload`), then static files are served when runserver would serve them
(:mod:`static`), then the project's ``ASGI_APPLICATION`` runs. With a health path (or a drain
delay) :mod:`health` sits just inside lifespan, outside the request log; with ``--metrics``,
:mod:`metrics` counts just inside it (probes are not counted). What waits for the first response
to be over (its timing with ``-v 2``, the checks after a reload) hooks in just inside the health
path (:mod:`~django_asgiserve.insight.first_response`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django_asgiserve.asgi.access_log import log_requests
from django_asgiserve.asgi.served_count import ServedCount, count_served
from django_asgiserve.asgi.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from django_asgiserve.insight.first_response import FirstResponseHook


def wrap(
    app: ASGIApp,
    *,
    serve_static: bool,
    proxy_headers: bool = False,
    forwarded_allow_ips: Sequence[str] = (),
    generation: str | None = None,
    listener_paths: frozenset[str] = frozenset(),
    request_cost: bool = False,
    health_path: str | None = None,
    metrics_fd: int = -1,
    access_log: bool = True,
    served: ServedCount | None = None,
    loop_warn_ms: float = 0.0,
    after_first_response: FirstResponseHook | None = None,
) -> ASGIApp:
    """The project's application with asgiserve's layers around it; with the reloader's
    ``generation``, open tabs follow reloads (see :mod:`tab_reload`); with ``request_cost``,
    each request's log line says what it cost (see :mod:`insight.request_cost`); without
    ``access_log``, no request log at all; with a ``metrics_fd``, requests are counted on that
    metrics board (see :mod:`metrics`); with ``served``, requests are counted for
    ``--max-requests``; with ``loop_warn_ms``, a watchdog reports a blocked event loop;
    ``after_first_response`` is called once the first response is over (see
    :mod:`insight.first_response`)."""
    if serve_static:
        from django_asgiserve.asgi.static import StaticFiles

        app = StaticFiles(app)
    if generation is not None:
        from django_asgiserve.asgi.tab_reload import follow

        app = follow(app, generation, listener_paths)
    if access_log:
        app = log_requests(app, request_cost=request_cost)
    if proxy_headers:
        # Outside the log, so that it shows the client the proxy reports.
        from django_asgiserve.asgi.proxy_headers import TrustedProxies, trust_proxy_headers

        app = trust_proxy_headers(app, TrustedProxies(forwarded_allow_ips))
    if metrics_fd >= 0:
        from django_asgiserve.asgi.metrics import count_requests

        app = count_requests(app, metrics_fd)
    if after_first_response is not None:  # outside the log, so that its time counts
        from django_asgiserve.insight.first_response import after_first_response as hooked

        app = hooked(app, after_first_response)
    if health_path is not None:  # outermost after lifespan: probes skip the log (see health)
        from django_asgiserve.asgi.health import answer_health

        app = answer_health(app, health_path)
    app = answer_lifespan(app)
    if served is not None:
        app = count_served(app, served)
    if loop_warn_ms > 0:
        from django_asgiserve.insight.loop_watchdog import watch_loops

        app = watch_loops(app, loop_warn_ms)
    return app


def answer_lifespan(app: ASGIApp) -> ASGIApp:
    """Complete lifespan startup and shutdown here; pass every other scope on."""

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    return lifespan_app
