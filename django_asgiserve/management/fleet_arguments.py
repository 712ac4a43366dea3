"""The command's options for running behind a balancer or an orchestrator: the health path,
the drain delay, the start-up timeout, worker recycling and the metrics listener (see
docs/deployment.md)."""

from __future__ import annotations

from argparse import ArgumentParser

from django_asgiserve import values


def add_fleet_arguments(parser: ArgumentParser) -> None:
    """Add the options, each value checked by its rule (:mod:`django_asgiserve.values`)."""
    parser.add_argument(
        "--health-path",
        type=values.HEALTH_PATH.parse,
        metavar="PATH",
        help="Answer PATH before Django: 200 while serving, 503 once stopping (default: "
        "ASGISERVE['HEALTH_PATH'], else off).",
    )
    parser.add_argument(
        "--drain-delay",
        type=values.DRAIN_DELAY.parse,
        help="Seconds to keep serving after SIGTERM, the health path answering 503, before "
        "the graceful stop (default: ASGISERVE['DRAIN_DELAY'], else 0).",
    )
    parser.add_argument(
        "--startup-timeout",
        type=values.STARTUP_TIMEOUT.parse,
        help="With --noreload, fail when no worker is ready within this many seconds "
        "(default: ASGISERVE['STARTUP_TIMEOUT'], else 60; 0: wait forever).",
    )
    parser.add_argument(
        "--max-requests",
        type=values.MAX_REQUESTS.parse,
        help="Replace a worker (the new one ready first) after it has served this many "
        "requests (default: ASGISERVE['MAX_REQUESTS'], else no limit).",
    )
    parser.add_argument(
        "--max-requests-jitter",
        type=values.MAX_REQUESTS_JITTER.parse,
        help="Add up to this many requests to each worker's --max-requests, at random "
        "(default: ASGISERVE['MAX_REQUESTS_JITTER'], else 0).",
    )
    parser.add_argument(
        "--max-worker-memory",
        type=values.MAX_WORKER_MEMORY.parse,
        metavar="MB",
        help="Replace a worker (the new one ready first) once one of its processes holds more "
        "than MB MiB of resident memory, checked every second; Linux only (default: "
        "ASGISERVE['MAX_WORKER_MEMORY'], else no limit).",
    )
    parser.add_argument(
        "--metrics",
        type=values.METRICS.parse,
        metavar="ADDR:PORT",
        help="Serve Prometheus metrics of every worker at http://ADDR:PORT/metrics, from the "
        "supervisor (a port alone: 127.0.0.1; default: ASGISERVE['METRICS'], else off).",
    )
