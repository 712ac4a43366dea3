"""``manage.py asgiserve [addrport]``: parse, validate, hand over to the supervisor."""

from __future__ import annotations

import os
import sys
from argparse import ArgumentParser
from datetime import datetime
from pathlib import Path
from typing import Any

import django
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, SystemCheckError
from django.db import connections
from django.utils.version import get_docs_version

from django_asgiserve import addrport, backends, checks, platforms, run_config, startup
from django_asgiserve import sockets as listening
from django_asgiserve.management import arguments
from django_asgiserve.management.listeners import listen, public_hosts
from django_asgiserve.process import memory
from django_asgiserve.reload import sources
from django_asgiserve.reload.sources import module_files
from django_asgiserve.supervisor.serving import Run, serve


class Command(BaseCommand):
    help = "Starts an ASGI server (uvicorn, daphne, hypercorn, granian, gunicorn) like runserver."

    requires_system_checks: list[str] = []
    suppressed_base_arguments = {"--traceback"}
    stealth_options = ("shutdown_message",)
    #: Non-loopback addresses served with DEBUG on: the banner warns about each.
    exposed: tuple[str, ...] = ()
    #: Where --metrics serves, for the banner ("" without).
    metrics_url = ""

    def add_arguments(self, parser: ArgumentParser) -> None:
        arguments.add_arguments(parser)

    def execute(self, *args: Any, **options: Any) -> Any:
        if options["no_color"]:
            # As runserver: the request log's formatter reads this in every worker.
            os.environ["DJANGO_COLORS"] = "nocolor"
        return super().execute(*args, **options)

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG and not settings.ALLOWED_HOSTS:
            raise CommandError("You must set settings.ALLOWED_HOSTS if DEBUG is False.")
        sockets = listening.inherited_sockets()
        activated = bool(sockets)
        if sockets and options["addrport"]:
            raise CommandError(
                "The server was started with sockets from systemd (LISTEN_FDS): leave out the "
                "address and port, the .socket unit sets them."
            )
        address = addrport.parse(options["addrport"], ipv6=options["use_ipv6"])
        hosts = [addrport.Address.of(s).host for s in sockets] if sockets else [address.host]
        server_config = startup.resolve(options, hosts, say=self.stdout.write)
        try:
            listeners = listen(address, server_config, sockets)
        except listening.BindError as error:
            self.stderr.write(f"Error: {error}")
            sys.exit(1)
        metrics_socket = None
        if server_config.metrics:
            from django_asgiserve.supervisor import metrics_listener

            metrics_socket, self.metrics_url = metrics_listener.bind(server_config.metrics)
        urls = [each.url(server_config.scheme) for each in listeners.addresses]
        self.exposed = tuple(public_hosts(listeners.sockets)) if settings.DEBUG else ()
        outcome = serve(
            Run(
                server_config,
                listeners.sockets,
                lambda: self.before_serving(server_config, urls),
                say=self.stdout.write,
                warn=lambda text: self.stderr.write(self.style.WARNING(text)),
                excluded_dirs=[Path(p) for p in (settings.MEDIA_ROOT, settings.STATIC_ROOT) if p],
                initial_roots=sources.project_roots(module_files()),
                socket_per_worker=listeners.socket_per_worker,
                metrics_socket=metrics_socket,
                activated=activated,
            )
        )
        if outcome.check_error is not None:  # --noreload: runserver's SystemCheckError
            raise outcome.check_error
        if outcome.failure:  # --noreload gave up (see supervisor.crashes)
            raise CommandError(outcome.failure)
        if options.get("shutdown_message"):
            self.stdout.write(options["shutdown_message"])

    def before_serving(self, server_config: run_config.ServerConfig, urls: list[str]) -> None:
        """runserver's checks, migrations warning and banner, while the first workers load: they
        serve once this returns (see :mod:`django_asgiserve.supervisor`)."""
        if not server_config.skip_checks:
            # What only serving can get wrong, before the project's own checks.
            report, _serious = checks.serving_report(
                checks.channel_layers(server_config.workers), self.style
            )
            if report:
                self.stderr.write(report)
            self.stdout.write("Performing system checks...\n\n")
            try:
                self.check(display_num_errors=True)
            except SystemCheckError as error:
                if not server_config.reload:
                    raise
                self.stderr.write(str(error))
                self.stderr.write("The server keeps running; it reloads when you fix the code.")
            except Exception as error:
                if not server_config.reload:
                    raise
                self.stderr.write(f"System checks could not run: {error!r}")
        try:
            self.check_migrations()
        finally:
            for connection in connections.all(initialized_only=True):
                connection.close()
        self.stdout.write(self.banner(server_config, urls))
        if server_config.max_worker_memory and not memory.measurable():
            self.stderr.write(self.style.WARNING(memory.UNAVAILABLE))
        if server_config.reload or server_config.verbosity >= 2:
            from django_asgiserve.insight import sync_hops

            if hops := sync_hops.report():
                self.stdout.write(self.style.WARNING(hops))

    def banner(self, server_config: run_config.ServerConfig, urls: list[str]) -> str:
        backend = backends.get(server_config.backend)
        quit_command = "CTRL-BREAK" if platforms.is_windows() else "CONTROL-C"
        mode = "development" if server_config.reload else "(no reload)"
        lines = [
            datetime.now().strftime("%B %d, %Y - %X"),
            f"Django version {django.get_version()}, using settings {settings.SETTINGS_MODULE!r}",
            f"Starting ASGI/{backend.name} {backend.version()} {mode} server at {urls[0]}",
            *(f"Also listening at {url}" for url in urls[1:]),
            f"Workers: {server_config.process_model} (--process-model).",
            *([f"Metrics at {self.metrics_url}"] if self.metrics_url else []),
            f"Quit the server with {quit_command}.",
        ]
        # The warning is about reloading: with --noreload the backend is a production server.
        if server_config.reload and os.environ.get("DJANGO_RUNSERVER_HIDE_WARNING") != "true":
            lines.append(
                self.style.WARNING(
                    "WARNING: This is a development server. Do not use it in a production "
                    "setting. Use a production WSGI or ASGI server instead.\nFor more "
                    "information on production servers see: https://docs.djangoproject.com/en/"
                    f"{get_docs_version()}/howto/deployment/"
                )
            )
        lines += [
            self.style.WARNING(
                f"WARNING: DEBUG is on and the server listens on {host}: anyone on your "
                "network can see tracebacks and settings."
            )
            for host in self.exposed
        ]
        return "\n".join(lines)
