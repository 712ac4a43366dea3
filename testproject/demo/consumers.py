"""Plain ASGI WebSocket apps (no Channels dependency)."""


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
