"""
ASGI entry point for the django-asgiserve demo project.

``application`` is a tiny plain-ASGI router (no Channels dependency):

* WebSocket connections to ``/ws/echo/`` go to :func:`demo.consumers.echo`,
  which echoes every text message back prefixed with ``"echo: "``;
* ``/ws/scheme/`` sends the connection's scope ``scheme`` (``ws`` or ``wss``) and closes;
* ``/ws/chat/`` (only when Channels is installed) is :class:`demo.chat.ChatConsumer`, which
  broadcasts what it receives to the group "chat" through ``CHANNEL_LAYERS``;
* WebSocket connections to any other path are rejected with close code 4404;
* HTTP requests to ``/asgi/slow-upload/`` go to :func:`demo.consumers.slow_upload`, which reads
  the request body straight from ``receive``, slowly at first;
* everything else (HTTP, lifespan, ...) goes to Django's ASGI handler.

It is what ``manage.py asgiserve`` serves (via ``ASGI_APPLICATION``) and can
also be run directly, e.g. ``uvicorn testproject.asgi:application``.
"""

import importlib.util
import os
from importlib import import_module

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

# Set up Django (settings and the app registry) first: project modules are
# imported only afterwards, so they are free to touch models.
django_application = get_asgi_application()

consumers = import_module("demo.consumers")

WEBSOCKET_ROUTES = {
    "/ws/echo/": consumers.echo,
    "/ws/scheme/": consumers.scheme,
}
if importlib.util.find_spec("channels") is not None:
    WEBSOCKET_ROUTES["/ws/chat/"] = import_module("demo.chat").ChatConsumer.as_asgi()


async def reject_websocket(scope, receive, send):
    """Refuse a WebSocket handshake for an unknown path (close code 4404)."""
    await receive()  # websocket.connect
    await send({"type": "websocket.close", "code": 4404})


async def application(scope, receive, send):
    """Route WebSocket connections by path; send everything else to Django."""
    if scope["type"] == "websocket":
        app = WEBSOCKET_ROUTES.get(scope["path"], reject_websocket)
        await app(scope, receive, send)
    elif scope["type"] == "http" and scope["path"] == "/asgi/slow-upload/":
        await consumers.slow_upload(scope, receive, send)
    else:
        await django_application(scope, receive, send)
