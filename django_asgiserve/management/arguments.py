"""The options of ``manage.py asgiserve``: runserver's, the server's, and (from
:mod:`fleet_arguments`) those for running behind a balancer; each value checked by its rule
(:mod:`django_asgiserve.values`)."""

from __future__ import annotations

import argparse
from argparse import ArgumentParser

from django_asgiserve import backends, run_config, values
from django_asgiserve.management.fleet_arguments import add_fleet_arguments


def add_arguments(parser: ArgumentParser) -> None:
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
    parser.add_argument(
        "--process-model",
        type=values.PROCESS_MODEL.parse,
        help="How workers start: fork them from a process that imported the project "
        "(fast reloads), or spawn each in a fresh interpreter (default: "
        "ASGISERVE['PROCESS_MODEL'], else spawn on macOS and where fork is missing, fork "
        "elsewhere; fork turns to spawn for the rest of the run when it proves unsafe).",
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
        "--https or --certfile and --keyfile, one worker.",
    )
