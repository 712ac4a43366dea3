"""ASGI layers between the server and the project's Django application."""
