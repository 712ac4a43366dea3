"""The ASGI layers around the project's application, the same on every backend."""
