"""The resolved configuration of one server run, shared by the supervisor and its workers.

The command builds it (command line over ``settings.ASGISERVE`` over defaults); the supervisor
hands it to each preloader process through the environment, as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field, replace
from importlib import import_module
from typing import TYPE_CHECKING, Any

from django_asgiserve.proxy import DEFAULT_ALLOW_IPS, TrustedProxies

if TYPE_CHECKING:
    from django_asgiserve.backends import Backend

ENVIRON_KEY = "ASGISERVE_CONFIG"

#: Seconds a worker gets to finish in-flight requests when it is stopped, by default.
DEVELOPMENT_GRACE = 1.0
PRODUCTION_GRACE = 10.0


@dataclass(frozen=True)
class TLSFiles:
    """The PEM certificate (chain) and private key HTTPS is served with."""

    certfile: str
    keyfile: str


@dataclass(frozen=True)
class ServerConfig:
    backend: str
    options: dict[str, Any] = field(default_factory=dict)
    reload: bool = True
    workers: int = 1
    serve_static: bool = True
    skip_checks: bool = False
    graceful_timeout: float = DEVELOPMENT_GRACE
    #: ``settings.DEBUG`` as the supervisor saw it: decides the error page when settings break.
    debug: bool = True
    settings_module: str = ""
    sys_path: list[str] = field(default_factory=lambda: list(sys.path))
    watch_paths: list[str] = field(default_factory=list)
    watch_ignore: list[str] = field(default_factory=list)
    #: Whether ``X-Forwarded-For``/``-Proto`` from ``forwarded_allow_ips`` peers are believed.
    proxy_headers: bool = False
    forwarded_allow_ips: list[str] = field(default_factory=lambda: list(DEFAULT_ALLOW_IPS))
    #: Whether workers send ``worker_started``/``worker_stopping`` (see :mod:`signals`).
    lifespan_signals: bool = False
    #: File descriptors of the listening sockets, as numbered in the children.
    socket_fds: list[int] = field(default_factory=list)
    #: Serve HTTPS with this certificate and key (both set) or plain HTTP (both empty).
    certfile: str = ""
    keyfile: str = ""
    #: Also serve HTTP/3 on a UDP socket at the same address (hypercorn, with TLS, one worker).
    http3: bool = False

    @property
    def tls(self) -> TLSFiles | None:
        return TLSFiles(self.certfile, self.keyfile) if self.certfile else None

    def for_slot(self, slot: int | None) -> ServerConfig:
        """This configuration for a worker serving only the socket of ``slot`` (with a socket
        per worker), or every socket (None)."""
        if slot is None:
            return self
        return replace(self, socket_fds=[self.socket_fds[slot]])

    @property
    def scheme(self) -> str:
        return "https" if self.certfile else "http"

    def to_environ(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_environ(cls) -> ServerConfig:
        return cls(**json.loads(os.environ[ENVIRON_KEY]))


def resolve(options: dict[str, Any]) -> ServerConfig:
    """The run's configuration from the command's options over ``settings.ASGISERVE``.

    Raises ``CommandError`` (with the settings problem or the backend hint) when it cannot run.
    """
    from django.apps import apps
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management.base import CommandError

    from django_asgiserve import backends, conf

    check_asgi_application()
    try:
        serve_settings = conf.load()
    except ImproperlyConfigured as error:
        raise CommandError(str(error)) from error
    name = options.get("backend") or serve_settings.backend
    try:
        backend = backends.get(name)
    except backends.BackendError as error:
        raise CommandError(f"{error}\nHINT: {error.hint}" if error.hint else str(error)) from error
    reload = options.get("use_reloader", True)
    grace = options.get("graceful_timeout")
    if grace is None:
        grace = serve_settings.graceful_timeout
    if grace is None:
        grace = DEVELOPMENT_GRACE if reload else PRODUCTION_GRACE
    proxy_headers = options.get("proxy_headers")
    if proxy_headers is None:
        proxy_headers = serve_settings.proxy_headers
    allow_ips = options.get("forwarded_allow_ips")
    if allow_ips is None:
        trusted = list(serve_settings.forwarded_allow_ips)
    else:
        try:
            trusted = TrustedProxies.from_option(allow_ips).entries
        except ValueError as error:
            raise CommandError(f"--forwarded-allow-ips: {error}") from None
    certfile, keyfile = tls_files(options.get("certfile"), options.get("keyfile"))
    http3 = bool(options.get("http3"))
    if http3:
        check_http3(backend, bool(certfile), options.get("workers") or 1)
    # The app registry, not INSTALLED_APPS: an app may be listed by its AppConfig's path.
    staticfiles = apps.is_installed("django.contrib.staticfiles")
    return ServerConfig(
        backend=backend.name,
        options=dict(serve_settings.options.get(backend.name, {})),
        reload=reload,
        workers=options.get("workers") or 1,
        serve_static=staticfiles
        and options.get("use_static_handler", True)
        and (settings.DEBUG or options.get("insecure_serving", False)),
        skip_checks=options.get("skip_checks", False),
        graceful_timeout=float(grace),
        debug=bool(settings.DEBUG),
        settings_module=settings.SETTINGS_MODULE or os.environ.get("DJANGO_SETTINGS_MODULE", ""),
        watch_paths=list(serve_settings.watch_paths),
        watch_ignore=list(serve_settings.watch_ignore),
        proxy_headers=bool(proxy_headers),
        forwarded_allow_ips=trusted,
        lifespan_signals=serve_settings.lifespan_signals,
        certfile=certfile,
        keyfile=keyfile,
        http3=http3,
    )


def tls_files(certfile: str | None, keyfile: str | None) -> tuple[str, str]:
    """Absolute paths of a certificate and key that load together, or CommandError.

    Loading them here turns a wrong path, a key that does not match or a password-protected
    key into one message before anything is served, instead of a failure in every worker.
    """
    import ssl

    from django.core.management.base import CommandError

    if not certfile and not keyfile:
        return "", ""
    if not certfile or not keyfile:
        raise CommandError("--certfile and --keyfile go together: give both to serve HTTPS.")
    paths = []
    for option, value in (("--certfile", certfile), ("--keyfile", keyfile)):
        path = os.path.abspath(value)
        if not os.path.isfile(path):
            raise CommandError(f"{option} {value!r}: no such file.")
        paths.append(path)
    # OpenSSL asks for a password only when the key is encrypted.
    asked_password: list[bool] = []
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            paths[0], paths[1], password=lambda: asked_password.append(True) or b""
        )
    except (ssl.SSLError, ValueError) as error:
        reason = error.args[-1] if error.args else error
        if asked_password:
            reason = "an encrypted key is not supported"
        raise CommandError(
            f"--certfile {certfile!r} and --keyfile {keyfile!r} cannot be used together: {reason}."
        ) from None
    return paths[0], paths[1]


def check_http3(backend: type[Backend], tls: bool, workers: int) -> None:
    """CommandError unless ``--http3`` can be served: hypercorn with aioquic, TLS, one worker."""
    import importlib.util

    from django.core.management.base import CommandError

    if not backend.serves_http3:
        raise CommandError(
            f"--http3 is served by the hypercorn backend only, not by {backend.name}."
        )
    if not tls:
        raise CommandError("--http3 needs --certfile and --keyfile: QUIC is always encrypted.")
    if importlib.util.find_spec("aioquic") is None:
        raise CommandError(
            "HTTP/3 needs aioquic, which is not installed.\nHINT: Install it with: pip install "
            '"django-asgiserve[http3]"'
        )
    if workers > 1:
        # The workers would share one UDP socket, and the kernel would hand each datagram of a
        # QUIC connection to any of them, while only one knows the connection.
        raise CommandError("--http3 serves one worker only: leave out --workers.")


def check_asgi_application() -> None:
    """Stop with a clear message when ``ASGI_APPLICATION`` cannot name an application.

    A module that does not exist, an attribute it lacks or a value that is not callable are
    mistakes in the settings, which no worker could serve. An exception raised while the
    project's module runs is the project's code: the worker shows it (and, with the reloader,
    serves the application as soon as the file is fixed).
    """
    from django.conf import settings
    from django.core.management.base import CommandError

    from django_asgiserve.asgi.handler import install_if_enabled

    install_if_enabled()  # before the project's module is imported here
    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return
    if not isinstance(path, str) or not all(path.rpartition(".")[::2]):
        raise CommandError(
            f"ASGI_APPLICATION must be a dotted path such as 'project.asgi.application', "
            f"not {path!r}."
        )
    module_path, _, name = path.rpartition(".")
    try:
        module = import_module(module_path)
    except ModuleNotFoundError as error:
        missing = error.name or ""
        if missing and (module_path == missing or module_path.startswith(f"{missing}.")):
            raise CommandError(
                f"ASGI_APPLICATION {path!r} cannot be loaded: there is no module {missing!r}."
            ) from None
        return
    except Exception:
        return
    if not hasattr(module, name):
        raise CommandError(
            f"ASGI_APPLICATION {path!r} cannot be loaded: module {module_path!r} has no "
            f"attribute {name!r}."
        )
    application = getattr(module, name)
    if not callable(application):
        raise CommandError(
            f"ASGI_APPLICATION {path!r} is a {type(application).__name__}, not an ASGI "
            "application (a callable)."
        )
