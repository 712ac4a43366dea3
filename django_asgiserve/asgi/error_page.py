"""What a worker serves when the project's code cannot be loaded: the error, not a refused socket.

With ``DEBUG`` on, HTTP requests get Django's technical 500 page for the exception (or its plain
traceback when settings themselves are broken); otherwise a bare 500. WebSocket handshakes are
refused. The worker keeps serving this until an edit brings working code. With the reloader
and ``DEBUG`` on, an open tab follows (see :mod:`tab_reload`): the page carries a script that
reloads it once the code is fixed, and an EventSource (django-browser-reload's) gets pings.
"""

from __future__ import annotations

import html
import traceback
from types import TracebackType

from django_asgiserve.asgi.types import ASGIApp, Receive, Scope, Send

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def render(exc_info: ExcInfo, *, debug: bool) -> tuple[bytes, bytes]:
    """The body and content type of the 500 response for ``exc_info``."""
    if not debug:
        return b"<h1>Server Error (500)</h1>", b"text/html; charset=utf-8"
    try:
        from django.views.debug import ExceptionReporter

        page = ExceptionReporter(None, *exc_info, is_email=False).get_traceback_html()
        return str(page).encode(), b"text/html; charset=utf-8"
    except Exception:
        text = "".join(traceback.format_exception(*exc_info))
        body = (
            "<!doctype html><title>Error loading the project</title>"
            "<h1>The project could not be loaded</h1>"
            "<p>django-asgiserve reloads as soon as the file is fixed.</p>"
            f"<pre>{html.escape(text)}</pre>"
        )
        return body.encode(), b"text/html; charset=utf-8"


def error_app(exc_info: ExcInfo, *, debug: bool, generation: str | None = None) -> ASGIApp:
    """The error's application; ``generation`` (the reloader's) lets an open tab follow."""
    from django_asgiserve.asgi import tab_reload

    page, content_type = render(exc_info, debug=debug)
    followed = generation if debug else None

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and followed is not None
            and tab_reload.wants_event_stream(scope)
        ):
            await tab_reload.serve_pings(followed, scope, receive, send)
        elif scope["type"] == "http":
            body = page
            if followed is not None:
                script = tab_reload.error_page_script(followed, scope.get("root_path", ""))
                body = tab_reload.with_script(page, script)
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", content_type),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        elif scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close", "code": 1011})

    return app
