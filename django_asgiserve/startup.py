"""From the command's options to the run's :class:`ServerConfig`, or one ``CommandError``.

Only the management command imports this (children receive the finished configuration).
"""

from __future__ import annotations

import importlib.util
import os
import ssl
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any, TypedDict

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, SystemCheckError
from django.core.management.color import color_style

from django_asgiserve import backends, checks, process_models, upstream
from django_asgiserve import settings as serve_settings_module
from django_asgiserve.backends import Backend
from django_asgiserve.https import option as https_option
from django_asgiserve.run_config import (
    DEFAULT_LOOP_WARN_MS,
    DEVELOPMENT_GRACE,
    PRODUCTION_GRACE,
    ServerConfig,
)
from django_asgiserve.settings import ServeSettings


def resolve(
    options: dict[str, Any], hosts: Sequence[str] = (), say: Callable[[str], object] = print
) -> ServerConfig:
    """The run's configuration from the command's options over ``settings.ASGISERVE``, for a
    server listening on ``hosts`` (the names ``--https``'s certificate covers); ``say`` tells
    the user what ``--https`` made for them.

    Raises ``CommandError`` (with the settings problem or the backend hint) when it cannot run.
    """
    check_asgi_application()
    try:
        serve_settings = serve_settings_module.load()
    except ImproperlyConfigured as error:
        raise CommandError(str(error)) from error
    name = options.get("backend") or serve_settings.backend
    if name in backends.NAMES:  # before its probes, which would fail for the same reason
        process_models.check_backend_runs_here(name)
    # Checked here, not as a registered system check: only serving needs the server installed.
    report, serious = checks.serving_report(checks.backend_installed(name), color_style())
    if serious:
        raise SystemCheckError(report)
    try:
        backend = backends.get(name)
    except backends.BackendError as error:
        raise CommandError(f"{error}\nHINT: {error.hint}" if error.hint else str(error)) from error
    check_upstreams(backend, int(options.get("verbosity", 1)))
    reload = options.get("use_reloader", True)
    grace = options.get("graceful_timeout")
    if grace is None:
        grace = serve_settings.graceful_timeout
    if grace is None:
        grace = DEVELOPMENT_GRACE if reload else PRODUCTION_GRACE
    proxy_headers = options.get("proxy_headers")
    if proxy_headers is None:
        proxy_headers = serve_settings.proxy_headers
    allow_ips = options.get("forwarded_allow_ips")  # checked by the parser (values.py)
    trusted = list(serve_settings.forwarded_allow_ips if allow_ips is None else allow_ips)
    if https_option.wanted(options, serve_settings.https):
        certfile, keyfile = https_option.files(hosts, say)
    else:
        certfile, keyfile = tls_files(options.get("certfile"), options.get("keyfile"))
    http3 = bool(options.get("http3"))
    if http3:
        check_http3(backend, bool(certfile), options.get("workers") or 1)
    # The app registry, not INSTALLED_APPS: an app may be listed by its AppConfig's path.
    # whitenoise's runserver_nostatic makes runserver leave static files to its middleware.
    staticfiles = apps.is_installed("django.contrib.staticfiles") and not apps.is_installed(
        "whitenoise.runserver_nostatic"
    )
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
        **insight_options(options, serve_settings, reload),
        **fleet_options(options, serve_settings),
        **process_models.choose(
            options.get("process_model"),
            serve_settings.process_model,
            backend.name,
            metrics=bool(options.get("metrics") or serve_settings.metrics),
        ),
    )


def check_upstreams(backend: type[Backend], verbosity: int) -> None:
    """What the probes of Django's, asgiref's and the backend's internals found
    (:mod:`django_asgiserve.upstream`): a ``SystemCheckError`` when one refuses, else its
    warnings (and, at verbosity 2, its notes) on stderr, once."""
    messages = upstream.serving_messages(backend.upstreams, verbosity)
    report, serious = checks.serving_report(messages, color_style())
    if serious:
        raise SystemCheckError(report)
    if report:
        sys.stderr.write(f"{report}\n")


class FleetOptions(TypedDict):
    health_path: str
    drain_delay: float
    startup_timeout: float
    max_requests: int
    max_requests_jitter: int
    max_worker_memory: int
    metrics: str


def fleet_options(options: dict[str, Any], serve_settings: ServeSettings) -> FleetOptions:
    """The health path, drain delay, metrics listener, start-up timeout and recycling limits:
    the command line over ``settings.ASGISERVE`` (each already checked by its rule)."""

    def option_or_setting(name: str) -> Any:
        value = options.get(name)
        return getattr(serve_settings, name) if value is None else value

    health_path = option_or_setting("health_path")
    metrics = option_or_setting("metrics")
    return {
        "health_path": health_path or "",
        "drain_delay": float(option_or_setting("drain_delay")),
        "startup_timeout": float(option_or_setting("startup_timeout")),
        "max_requests": int(option_or_setting("max_requests")),
        "max_requests_jitter": int(option_or_setting("max_requests_jitter")),
        "max_worker_memory": int(option_or_setting("max_worker_memory")),
        "metrics": metrics or "",
    }


class InsightOptions(TypedDict):
    loop_warn_ms: float
    request_cost: bool
    warm_up: bool
    access_log: bool
    verbosity: int
    pdb: bool


def insight_options(
    options: dict[str, Any], serve_settings: ServeSettings, reload: bool
) -> InsightOptions:
    """The watchdog's threshold (on by default with the reloader), the request log, the
    request-cost extras (with the reloader, on the request log), the verbosity and ``--pdb``
    (CommandError where it cannot be used)."""
    if options.get("pdb"):
        from django_asgiserve.insight.post_mortem import refusal

        why = refusal(reload=reload, debug=settings.DEBUG, workers=options.get("workers") or 1)
        if why is not None:
            raise CommandError(why)
    loop_warn_ms = options.get("loop_warn_ms")
    if loop_warn_ms is None:
        loop_warn_ms = serve_settings.loop_warn_ms
    if loop_warn_ms is None:
        loop_warn_ms = DEFAULT_LOOP_WARN_MS if reload else 0.0
    access_log = options.get("access_log")
    if access_log is None:
        access_log = serve_settings.access_log
    return {
        "loop_warn_ms": float(loop_warn_ms),
        "request_cost": reload and serve_settings.request_cost and bool(access_log),
        "warm_up": reload and serve_settings.warm_up,
        "access_log": bool(access_log),
        "verbosity": int(options.get("verbosity", 1)),
        "pdb": bool(options.get("pdb")),
    }


def tls_files(certfile: str | None, keyfile: str | None) -> tuple[str, str]:
    """Absolute paths of a certificate and key that load together, or CommandError.

    Loading them here turns a wrong path, a key that does not match or a password-protected
    key into one message before anything is served, instead of a failure in every worker.
    """

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

    def password() -> bytes:
        asked_password.append(True)
        return b""

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            paths[0], paths[1], password=password
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

    if not backend.serves_http3:
        raise CommandError(
            f"--http3 is served by the hypercorn backend only, not by {backend.name}."
        )
    if not tls:
        raise CommandError(
            "--http3 needs --https, or --certfile and --keyfile: QUIC is always encrypted."
        )
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
