"""``manage.py asgiserve [addrport]``: parse, validate, hand over to the supervisor."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from argparse import ArgumentParser
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import django
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, SystemCheckError
from django.db import connections
from django.utils.version import get_docs_version

from django_asgiserve import addrport, backends, checks, run_config, startup, values
from django_asgiserve import sockets as listening
from django_asgiserve.management.fleet_arguments import add_fleet_arguments
from django_asgiserve.process import memory
from django_asgiserve.process.supervisor import Supervisor
from django_asgiserve.reload import sources
from django_asgiserve.reload.sources import module_files


class Command(BaseCommand):  # type: ignore[misc]
    help = "Starts an ASGI server (uvicorn, daphne, hypercorn, granian, gunicorn) like runserver."

    requires_system_checks: list[str] = []
    suppressed_base_arguments = {"--traceback"}
    stealth_options = ("shutdown_message",)
    #: Non-loopback addresses served with DEBUG on: the banner warns about each.
    exposed: tuple[str, ...] = ()
    #: Where --metrics serves, for the banner ("" without).
    metrics_url = ""

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("addrport", nargs="?", help="Optional port number, or ipaddr:port")
        parser.add_argument(
            "--ipv6", "-6", action="store_true", dest="use_ipv6", help="Use an IPv6 address."
        )
        parser.add_argument(
            "--nothreading",
            action="store_false",
            dest="use_threading",
            help="Accepted for runserver compatibility; ASGI servers do not use it.",
        )
        parser.add_argument(
            "--noreload",
            action="store_false",
            dest="use_reloader",
            help="Do not reload when code changes.",
        )
        parser.add_argument(
            "--nostatic",
            action="store_false",
            dest="use_static_handler",
            help="Do NOT serve static files at STATIC_URL.",
        )
        parser.add_argument(
            "--insecure",
            action="store_true",
            dest="insecure_serving",
            help="Serve static files even if DEBUG is False.",
        )
        parser.add_argument("--skip-checks", action="store_true", help="Skip system checks.")
        parser.add_argument(
            "--backend",
            type=values.BACKEND.parse,
            help=f"The ASGI server: {', '.join(backends.NAMES)} (default: ASGISERVE['BACKEND'], "
            "else the first installed).",
        )
        parser.add_argument(
            "--workers",
            type=values.WORKERS.parse,
            default=1,
            help="Worker processes serving the socket (default 1). Each reload replaces all.",
        )
        parser.add_argument(
            "--graceful-timeout",
            type=values.GRACEFUL_TIMEOUT.parse,
            help="Seconds in-flight requests get to finish when a worker stops "
            f"(default {run_config.DEVELOPMENT_GRACE:g}, or {run_config.PRODUCTION_GRACE:g} with "
            "--noreload).",
        )
        add_fleet_arguments(parser)
        parser.add_argument(
            "--proxy-headers",
            action=argparse.BooleanOptionalAction,
            help="Take the client's address and scheme from X-Forwarded-For and "
            "X-Forwarded-Proto when the peer is in --forwarded-allow-ips (default: "
            "ASGISERVE['PROXY_HEADERS'], else off).",
        )
        parser.add_argument(
            "--forwarded-allow-ips",
            type=values.FORWARDED_ALLOW_IPS.parse,
            metavar="IPS",
            help="Comma-separated addresses or networks of the proxies to trust, or '*' for "
            "any (default: ASGISERVE['FORWARDED_ALLOW_IPS'], else 127.0.0.1,::1).",
        )

        parser.add_argument(
            "--certfile",
            metavar="PATH",
            help="Serve HTTPS with this PEM certificate (chain); HTTP/2 is offered by ALPN on "
            "the backends that speak it. Needs --keyfile.",
        )
        parser.add_argument("--keyfile", metavar="PATH", help="The certificate's private key.")
        parser.add_argument(
            "--https",
            action=argparse.BooleanOptionalAction,
            help="Serve HTTPS with a certificate from a local certificate authority made on "
            "first use (trust it once with manage.py asgiserve_ca trust); HTTP/2 as with "
            "--certfile (default: ASGISERVE['HTTPS'], else off).",
        )
        parser.add_argument(
            "--loop-warn-ms",
            type=values.LOOP_WARN_MS.parse,
            metavar="MS",
            help="Warn when a worker's event loop is blocked longer than MS milliseconds; 0 "
            f"turns it off (default: ASGISERVE['LOOP_WARN_MS'], else "
            f"{run_config.DEFAULT_LOOP_WARN_MS:g} with the reloader, off with --noreload).",
        )
        parser.add_argument(
            "--pdb",
            action="store_true",
            help="Open a post-mortem debugger (pdb) in this terminal where a view or middleware "
            "raised an unhandled exception; the request gets its error page when you continue. "
            "Development (DEBUG on, the reloader, one worker) only.",
        )
        parser.add_argument(
            "--access-log",
            action=argparse.BooleanOptionalAction,
            help="Log each request in runserver's format; --no-access-log leaves the request "
            "log out (as the other servers' CLIs run by default) (default: "
            "ASGISERVE['ACCESS_LOG'], else on).",
        )
        parser.add_argument(
            "--http3",
            action="store_true",
            help="Also serve HTTP/3 (QUIC) on the same UDP port: hypercorn with aioquic, "
            "--certfile and --keyfile, one worker.",
        )

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
        backend = backends.get(server_config.backend)
        # Servers accept greedily: on one shared socket a burst of connections all goes to one
        # worker. A socket per worker (SO_REUSEPORT twins that we keep open) lets the kernel
        # spread them, as granian's own command line does, and none is closed by a reload.
        socket_per_worker = (
            not backend.manages_workers
            and server_config.workers > 1
            and not sockets
            and hasattr(socket, "SO_REUSEPORT")
        )
        if sockets:
            addresses = [addrport.Address.of(sock) for sock in sockets]
        else:
            try:
                sockets = [listening.bind(address, reuse_port=socket_per_worker)]
                if socket_per_worker:
                    sockets = listening.bind_twins(sockets[0], server_config.workers)
            except listening.BindError as error:
                self.stderr.write(f"Error: {error}")
                sys.exit(1)
            addresses = [replace(address, port=sockets[0].getsockname()[1])]
        if server_config.http3:
            try:
                sockets += [listening.bind_datagram(sock) for sock in sockets]
            except listening.BindError as error:
                self.stderr.write(f"Error: UDP for HTTP/3: {error}")
                sys.exit(1)
        metrics_socket = None
        if server_config.metrics:
            from django_asgiserve.process import metrics_listener

            metrics_socket, self.metrics_url = metrics_listener.bind(server_config.metrics)
        supervisor = Supervisor(
            server_config,
            sockets,
            say=self.stdout.write,
            warn=lambda text: self.stderr.write(self.style.WARNING(text)),
            excluded_dirs=[Path(p) for p in (settings.MEDIA_ROOT, settings.STATIC_ROOT) if p],
            initial_roots=sources.project_roots(module_files()),
            socket_per_worker=socket_per_worker,
            metrics_socket=metrics_socket,
            activated=activated,
        )
        urls = [each.url(server_config.scheme) for each in addresses]
        self.exposed = tuple(public_hosts(sockets)) if settings.DEBUG else ()
        try:
            code = supervisor.serve(lambda: self.before_serving(server_config, urls))
        except SystemCheckError as error:
            raise CommandError(str(error)) from None
        if code and supervisor.failure:  # --noreload gave up (see process.failfast)
            raise CommandError(supervisor.failure)
        if code:
            raise CommandError("The project could not be loaded (see the error above).")
        if options.get("shutdown_message"):
            self.stdout.write(options["shutdown_message"])

    def before_serving(self, server_config: run_config.ServerConfig, urls: list[str]) -> None:
        """runserver's checks and banner, printed while the first worker starts."""
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
        quit_command = "CTRL-BREAK" if sys.platform == "win32" else "CONTROL-C"
        mode = "development" if server_config.reload else "(no reload)"
        lines = [
            datetime.now().strftime("%B %d, %Y - %X"),
            f"Django version {django.get_version()}, using settings {settings.SETTINGS_MODULE!r}",
            f"Starting ASGI/{backend.name} {backend.version()} {mode} server at {urls[0]}",
            *(f"Also listening at {url}" for url in urls[1:]),
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


def public_hosts(sockets: list[socket.socket]) -> list[str]:
    """The addresses of ``sockets`` that other machines can reach (not loopback ones)."""
    hosts = []
    for sock in sockets:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            continue
        host = sock.getsockname()[0]
        address = ipaddress.ip_address(host.partition("%")[0])
        loopback = getattr(address, "ipv4_mapped", None) or address
        if not loopback.is_loopback and host not in hosts:
            hosts.append(host)
    return hosts
