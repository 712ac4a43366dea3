"""Plain ASGI apps (no Channels dependency): WebSocket ones, and a slow HTTP upload reader."""

import asyncio
import hashlib
import json
import math
from urllib.parse import parse_qs


async def echo(scope, receive, send):
    """Accept the connection and echo each text message back as "echo: <text>"."""
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            await send({"type": "websocket.send", "text": f"echo: {text}"})
        elif message["type"] == "websocket.disconnect":
            return


async def scheme(scope, receive, send):
    """Accept, send the scope's scheme (``ws`` when the server leaves it out) and close."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": scope.get("scheme", "ws")})
    await send({"type": "websocket.close"})


async def slow_upload(scope, receive, send):
    """Read the request body straight from ``receive``, pausing ``?pause=S`` seconds (default 1,
    at most 30) after its first message, and answer with its size and SHA-256 as JSON
    (``?read=0``: at once, without reading the body).

    The pause is a reader slower than the client: a server that keeps reading the connection
    meanwhile holds the rest of the body in memory.
    """
    query = parse_qs(scope["query_string"].decode())
    try:
        pause = float(query.get("pause", ["1"])[0])
    except ValueError:
        pause = 1.0
    pause = min(max(pause, 0.0), 30.0) if math.isfinite(pause) else 1.0
    digest = hashlib.sha256()
    size = 0
    messages = 0
    # ?read=0 answers without reading the body at all (a response before the body's end).
    more_body = query.get("read", ["1"])[0] != "0"
    while more_body:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        digest.update(message.get("body", b""))
        size += len(message.get("body", b""))
        more_body = message.get("more_body", False)
        messages += 1
        if messages == 1:
            await asyncio.sleep(pause)
    body = json.dumps({"size": size, "sha256": digest.hexdigest(), "messages": messages})
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body.encode()})
