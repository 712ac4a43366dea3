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


async def scheme(scope, receive, send):
    """Accept, send the scope's scheme (``ws`` when the server leaves it out) and close."""
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": scope.get("scheme", "ws")})
    await send({"type": "websocket.close"})
