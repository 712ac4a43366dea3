"""The interface every server backend implements, and what they share.

A backend serves one ASGI application on sockets that are already bound and listening (the
supervisor owns them), until :meth:`Backend.stop` is called from another thread. It must not
install signal handlers, log access lines, speak lifespan, or rewrite paths: the worker does
those once for every backend.
"""

from __future__ import annotations

import importlib.util
import inspect
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from django.dispatch import Signal

    from django_asgiserve.reload.changes import Classification
    from django_asgiserve.run_config import ServerConfig, TLSFiles

ASGIApp = Callable[..., Any]

#: Seconds a stopping worker keeps connections it already accepted, before it closes the idle
#: ones: a client sends its request right after connecting, but the server reads it a moment
#: later, and until then the connection looks idle. Closing it then would fail a request made
#: during a reload, which the next worker was ready to answer.
ACCEPTED_SETTLE_SECONDS = 0.1


#: Why ``backlog`` is not a backend option: the socket is shared by every worker and reload.
BACKLOG_OWNED = "the supervisor's socket has a backlog of 2048 for every worker"


class BackendError(Exception):
    """A backend cannot be used; carries a hint for the user."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


#: Why asgiserve refuses a server option it sets itself (the reason in the error message).
MANAGED = "the supervisor binds sockets, runs workers, reloads and logs requests"


class Backend(ABC):
    """One ASGI server, driven from Python on inherited listening sockets."""

    name: ClassVar[str]
    #: The distribution on PyPI (for the version and the install hint).
    distribution: ClassVar[str]
    #: The import name that tells whether it is installed.
    module: ClassVar[str]
    #: Options that asgiserve sets itself and a user may not pass through ``OPTIONS``,
    #: with the reason shown in the error.
    managed_options: ClassVar[Mapping[str, str]] = {}
    #: Whether ``preload()`` leaves the process safe to ``fork()`` workers from.
    fork_safe: ClassVar[bool] = True
    #: Packages that must be imported in each worker, never in the preloader.
    worker_only_packages: ClassVar[tuple[str, ...]] = ()
    #: Whether ``serve()`` forks its own serving processes (as many as ``--workers``): the
    #: supervisor then runs one asgiserve worker, and each of those processes sends the
    #: lifespan signals through :attr:`announce` instead of it.
    manages_workers: ClassVar[bool] = False
    #: Whether the server itself runs on Windows (gunicorn does not).
    runs_on_windows: ClassVar[bool] = True
    #: Whether it serves HTTP/3 on a UDP socket among those ``serve()`` gets (``--http3``).
    serves_http3: ClassVar[bool] = False
    #: Whether ``serve()`` can run in a thread that is not the main one, once or many times in a
    #: process (the test live server runs it so, beside the tests, see :mod:`live_server`).
    serves_in_thread: ClassVar[bool] = False
    #: The modules of :mod:`django_asgiserve.upstream` for the projects it relies on beyond their
    #: documented API: the command probes them before it serves, and each serving process too.
    upstreams: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ServerConfig) -> None:
        self.options: dict[str, Any] = dict(config.options)
        self.graceful_timeout = config.graceful_timeout
        #: The certificate and key to serve HTTPS with (HTTP/2 by ALPN where the server can),
        #: or None for plain HTTP.
        self.tls: TLSFiles | None = config.tls
        #: Sends a signal of :mod:`django_asgiserve.signals`; the worker sets it unless it
        #: serves broken code.
        self.announce: Callable[[Signal], None] = lambda signal: None
        #: Runs Django's ``file_changed`` receivers in this process for changed files and says
        #: what the change means (see :mod:`django_asgiserve.changes`); the worker sets it.
        self.classify_here: Callable[[list[str]], Classification] = reload_for_any_change

    @classmethod
    def is_installed(cls) -> bool:
        return importlib.util.find_spec(cls.module) is not None

    @classmethod
    def version(cls) -> str:
        try:
            return version(cls.distribution)
        except PackageNotFoundError:
            return "unknown"

    @classmethod
    @abstractmethod
    def accepted_options(cls) -> Iterable[str]:
        """The option names the server itself accepts (imports the server)."""

    @classmethod
    def option_errors(cls, options: Mapping[str, Any]) -> list[str]:
        """What is wrong with user ``OPTIONS`` for this backend (by name only)."""
        accepted = set(cls.accepted_options())
        errors = []
        for key in options:
            if key in cls.managed_options:
                errors.append(f"{key!r} is set by asgiserve: {cls.managed_options[key]}")
            elif key not in accepted:
                errors.append(
                    f"{key!r} is not a {cls.name} option. "
                    f"Valid options: {', '.join(sorted(accepted - set(cls.managed_options)))}."
                )
        return errors

    def preload(self) -> None:  # noqa: B027 - optional hook
        """Import what is safe to import before ``fork()``, to make workers start fast."""

    @classmethod
    def probe_upstreams(cls) -> None:
        """Probe what the backend relies on in this process (once: its forks inherit the
        findings, which choose the fallbacks); raise :class:`BackendError` if one refuses."""
        from django_asgiserve import upstream

        for name in cls.upstreams:
            findings = upstream.probe(name)
            if findings.refused:
                raise BackendError(findings.refusal(), hint=f'pip install "{findings.pin()}"')

    @abstractmethod
    def serve(self, app: ASGIApp, sockets: list[socket.socket]) -> None:
        """Serve ``app`` on ``sockets`` until :meth:`stop`; runs in the worker's main thread."""

    def classify_change(self, paths: list[str]) -> Classification:
        """What ``paths`` changing means to every process that serves; a backend that forks
        its own serving processes has each of them judge too (and apply) the change."""
        return self.classify_here(paths)

    @abstractmethod
    def stop(self) -> None:
        """Ask ``serve()`` to stop accepting, finish in-flight work and return; thread-safe.

        The worker tells the supervisor "stopping" as this returns, and the end of a drain may
        then shut the shared socket down: a backend whose accept loop cannot stand that (granian)
        returns only once that loop is over."""


def reload_for_any_change(paths: list[str]) -> Classification:
    """What a process that cannot judge changes answers: replace the workers."""
    return "reload", paths


def signature_names(func: Callable[..., Any]) -> set[str]:
    return {
        name
        for name, parameter in inspect.signature(func).parameters.items()
        if name != "self" and parameter.kind is not parameter.VAR_KEYWORD
    }
