"""The registry of server backends: which exist, which is installed, which ``auto`` picks.

Each backend lives in its own module behind :class:`~django_asgiserve.backends.base.Backend`;
adding one means adding a module and a line to ``REGISTRY``. Nothing here imports a server.
"""

from __future__ import annotations

from importlib import import_module

from django_asgiserve.backends.base import Backend, BackendError

# name -> "module:Class"; the order is the order ``auto`` tries them in.
REGISTRY: dict[str, str] = {
    "uvicorn": "django_asgiserve.backends.uvicorn:UvicornBackend",
    "hypercorn": "django_asgiserve.backends.hypercorn:HypercornBackend",
    "daphne": "django_asgiserve.backends.daphne:DaphneBackend",
    "granian": "django_asgiserve.backends.granian:GranianBackend",
    "gunicorn": "django_asgiserve.backends.gunicorn:GunicornBackend",
}
NAMES: tuple[str, ...] = tuple(REGISTRY)

__all__ = [
    "NAMES",
    "Backend",
    "BackendError",
    "backend_class",
    "get",
    "in_thread_names",
    "why_not_in_thread",
]


def backend_class(name: str) -> type[Backend]:
    """The class of a known backend (importing our module only, never the server)."""
    module_name, _, class_name = REGISTRY[name].partition(":")
    cls: type[Backend] = getattr(import_module(module_name), class_name)
    return cls


def in_thread_names() -> tuple[str, ...]:
    """The backends that can serve in a thread of another program (the tests' live server)."""
    return tuple(name for name in NAMES if backend_class(name).serves_in_thread)


def why_not_in_thread(name: object) -> str | None:
    """Why ``name`` cannot serve the tests' live server (None: it can, or it is ``auto``)."""
    if name == "auto" or name in in_thread_names():
        return None
    if name in NAMES:
        return f"{name!r} cannot serve in a thread of the test process"
    return f"{name!r} is not a backend"


def get(name: str) -> type[Backend]:
    """Resolve a backend name (or ``"auto"``) to an installed backend class."""
    if name == "auto":
        for candidate in NAMES:
            cls = backend_class(candidate)
            if cls.is_installed():
                return cls
        raise BackendError(
            "No ASGI server is installed for django-asgiserve.",
            hint=f'Install one, for example: pip install "django-asgiserve[{NAMES[0]}]"',
        )
    if name not in REGISTRY:
        raise BackendError(
            f"Unknown backend {name!r}.",
            hint=f"Choose one of: auto, {', '.join(NAMES)}.",
        )
    cls = backend_class(name)
    if not cls.is_installed():
        raise BackendError(
            f"The {name} backend is not installed.",
            hint=f'Install it with: pip install "django-asgiserve[{name}]"',
        )
    return cls
