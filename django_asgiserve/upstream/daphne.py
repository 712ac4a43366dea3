"""What asgiserve relies on in daphne beyond its documented API, probed in the command before it
serves (from daphne's source, unexecuted: importing ``daphne.server`` installs Twisted's reactor,
which belongs to each worker) and once in each process that serves.

Relied on, why, since which daphne, and what happens without it:

``daphne.server.serverFromString``, looked up by ``Server.run``
    replaced in the worker by asgiserve's endpoints, which adopt the inherited sockets
    (IPv6 too) and speak TLS over them (``backends/daphne.py``). Since 2.0. Without: asgiserve
    cannot serve with daphne (refused).
``Server.create_application`` (building from ``Server.application``), ``handle_reply``,
``listen_success``, ``abort_start``, ``connections[...]["application_instance"]``
    Date headers, paced response bodies and the graceful stop: stop listening at once, stop
    the reactor once no application runs (``backends/daphne_server.py``). Since 2.0. Without:
    refused.
``daphne.server.HTTPFactory``, looked up by ``Server.run``; ``WebRequest.handle_reply``
    replaced by a factory whose requests stream their bodies to the application
    (``backends/daphne_body.py``). Since 2.0. Without: request bodies go daphne's way, read
    whole before the application starts (a warning).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from django_asgiserve.upstream.probing import (
    Check,
    Findings,
    Reliance,
    Upstream,
    function_code,
    looks_up_globals,
    mentions,
    methods_mention,
    run_checks,
    unexecuted_code,
)

UPSTREAM = Upstream("daphne", "daphne", lowest="4.1", newest="4.2.3")

ENDPOINTS = Reliance(
    "daphne.server.serverFromString, looked up by Server.run",
    since="2.0",
    why="the worker's daphne listens on the inherited sockets (IPv6 and TLS too) through it",
)
SERVER_HOOKS = Reliance(
    "Server.create_application, handle_reply, listen_success, abort_start and "
    "connections[...]['application_instance']",
    since="2.0",
    why="Date headers, paced response bodies and a graceful stop that lets running "
    "applications finish",
)
HTTP_FACTORY = Reliance(
    "daphne.server.HTTPFactory, looked up by Server.run, and WebRequest.handle_reply",
    since="2.0",
    why="request bodies reach the application as they arrive",
    fallback="request bodies go daphne's way, read whole before the application starts",
)


def server_code() -> Any:
    return unexecuted_code("daphne.server")


def has_endpoints() -> bool:
    return looks_up_globals(function_code(server_code(), "Server.run"), "serverFromString")


def has_server_hooks() -> bool:
    code = server_code()
    create = function_code(code, "Server.create_application")
    return (
        mentions(create, "application", "application_instance", "connections")
        and mentions(function_code(code, "Server.run"), "abort_start", "listen_success")
        and all(
            function_code(code, f"Server.{name}")
            for name in ("handle_reply", "listen_success", "stop")
        )
    )


def has_http_factory() -> bool:
    run = function_code(server_code(), "Server.run")
    protocol = unexecuted_code("daphne.http_protocol")
    return looks_up_globals(run, "HTTPFactory") and methods_mention(
        protocol, "WebRequest", "handle_reply"
    )


CHECKS: Mapping[Reliance, Check] = {
    ENDPOINTS: has_endpoints,
    SERVER_HOOKS: has_server_hooks,
    HTTP_FACTORY: has_http_factory,
}


@functools.cache
def probe() -> Findings:
    """What holds of the above in the daphne installed (once per process)."""
    return run_checks(UPSTREAM, CHECKS)


def use_endpoints(endpoint: Callable[[Any, str], Any]) -> None:
    """In the worker: daphne's endpoint strings name inherited sockets, adopted by ``endpoint``."""
    import daphne.server

    daphne.server.serverFromString = endpoint


def use_http_factory(factory: type) -> bool:
    """In the worker: daphne's HTTP connections are made by ``factory``; whether they can be."""
    if not probe().holds(HTTP_FACTORY):
        return False
    import daphne.server

    daphne.server.HTTPFactory = factory
    return True


def running_applications(server: Any) -> Iterator[Any]:
    """The application instances of ``server``'s connections (futures)."""
    for details in server.connections.values():
        instance = details.get("application_instance")
        if instance is not None:
            yield instance
