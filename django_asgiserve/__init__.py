"""Serve a Django project over ASGI as easily as runserver, on uvicorn, daphne or hypercorn."""

__version__ = "0.1.0"
