"""What one server run is, as the supervisor and its children receive it (a leaf).

:mod:`django_asgiserve.startup` builds it (command line over ``settings.ASGISERVE`` over
defaults); the supervisor hands it to each preloader process through the environment, as JSON.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from django_asgiserve.asgi.proxy_headers import DEFAULT_ALLOW_IPS

ENVIRON_KEY = "ASGISERVE_CONFIG"

#: Seconds a worker gets to finish in-flight requests when it is stopped, by default.
DEVELOPMENT_GRACE = 1.0
PRODUCTION_GRACE = 10.0
#: Extra seconds after the grace period before a stopping worker ends itself regardless.
HARD_STOP_MARGIN = 0.5
#: Milliseconds a worker's event loop may stay blocked before a warning, with the reloader.
DEFAULT_LOOP_WARN_MS = 100.0


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
    #: The reload this worker serves (see :mod:`tab_reload`): the same for all workers of one.
    generation: str = ""
    #: Warn when a worker's event loop is blocked longer than this (0: no watchdog).
    loop_warn_ms: float = 0.0
    #: ``--pdb``: a post-mortem debugger at each unhandled exception (see insight.post_mortem).
    pdb: bool = False
    #: Whether the request log shows each request's duration (and queries, with DEBUG).
    request_cost: bool = False
    #: Whether requests are logged in runserver's format (``--no-access-log``: not at all).
    access_log: bool = True
    verbosity: int = 1
    #: With the reloader and ``WARM_UP``: new workers build what the ones they replace had, from
    #: the anonymous file where serving workers note it, as numbered in the children (see
    #: process.warm_up; -1: no warm-up).
    warm_up: bool = False
    warm_plan_fd: int = -1
    #: ``--health-path``: answered before Django, 200 while serving, 503 once draining.
    health_path: str = ""
    #: ``--drain-delay``: seconds of serving (health 503) after SIGTERM before the stop.
    drain_delay: float = 0.0
    #: ``--startup-timeout``: with --noreload, seconds for a first worker to be ready (0: no bound).
    startup_timeout: float = 60.0
    #: ``--max-requests`` (0: no limit) and ``--max-requests-jitter``: see process.recycling.
    max_requests: int = 0
    max_requests_jitter: int = 0
    #: ``--metrics``: the supervisor's listener address (``[addr:]port``; empty: no metrics),
    #: and the descriptor of the board workers count on, as numbered in the children (-1: none).
    metrics: str = ""
    metrics_fd: int = -1

    @property
    def board_fds(self) -> list[int]:
        """The metrics board's and the warm-up plan's descriptors, for a child that must inherit
        them."""
        return [fd for fd in (self.metrics_fd, self.warm_plan_fd) if fd >= 0]

    #: ``--max-worker-memory``: MiB a worker's largest process may hold (0: no limit); see
    #: process.memory.
    max_worker_memory: int = 0
    #: How workers start: ``fork`` (from a preloader) or ``spawn`` (a fresh interpreter each).
    process_model: str = "fork"
    #: Whether ``process_model`` was asked for (a fork that proves unsafe then stays fork).
    process_model_forced: bool = False

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
