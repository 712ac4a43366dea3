"""The Prometheus text exposition (format 0.0.4) of what ``--metrics`` serves: the workers'
totals from the metrics board and the supervisor's own counts, each family with its ``# HELP``
and ``# TYPE`` lines, in base units (seconds)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django_asgiserve.process.metrics_board import BUCKETS, OTHER_STATUS, Totals

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Why a worker exited, as ``asgiserve_worker_exits_total`` labels it.
EXIT_REASONS = ("crash", "reload", "recycle", "stop")
#: A line of a family: the suffix of its name (``_bucket``...), its labels and its value.
Sample = tuple[str, Mapping[str, str], float]


@dataclass
class SupervisorFigures:
    """What the supervisor knows itself: its workers and what happened to them."""

    workers: int = 0
    starts: int = 0
    exits: Mapping[str, int] = field(default_factory=dict)
    reloads: int = 0


def render(totals: Totals, supervisor: SupervisorFigures) -> str:
    """The whole exposition, one family after the other."""
    requests = [
        ("", {"status": "other" if code == OTHER_STATUS else str(code)}, count)
        for code, count in sorted(totals.statuses.items(), key=lambda item: item[0] or 1000)
    ]
    cumulative, histogram = 0, list[Sample]()
    for bound, count in zip([*map(repr, BUCKETS), "+Inf"], totals.buckets, strict=True):
        cumulative += count
        histogram.append(("_bucket", {"le": bound}, cumulative))
    histogram += [("_sum", {}, totals.duration_seconds), ("_count", {}, cumulative)]
    exits = [("", {"reason": r}, supervisor.exits.get(r, 0)) for r in EXIT_REASONS]
    return "".join(
        [
            family(
                "asgiserve_http_requests_total",
                "counter",
                "HTTP requests answered by the workers, by status code (the health path is not "
                "counted; 499: the client went away first).",
                requests,
            ),
            family(
                "asgiserve_http_request_duration_seconds",
                "histogram",
                "Seconds from a request reaching asgiserve to the end of its response body.",
                histogram,
            ),
            gauge(
                "asgiserve_http_requests_in_flight",
                "HTTP requests being answered now (streams included).",
                totals.in_flight,
            ),
            gauge(
                "asgiserve_websocket_connections_open",
                "WebSocket connections accepted and not yet ended.",
                totals.websockets_open,
            ),
            family(
                "asgiserve_websocket_connections_total",
                "counter",
                "WebSocket connections accepted.",
                single(totals.websockets_total),
            ),
            gauge(
                "asgiserve_workers",
                "asgiserve worker processes serving now (with gunicorn: the ones running its "
                "arbiter).",
                supervisor.workers,
            ),
            family(
                "asgiserve_worker_starts_total",
                "counter",
                "Workers that became ready to serve.",
                single(supervisor.starts),
            ),
            family(
                "asgiserve_worker_exits_total",
                "counter",
                "Workers that had been ready and exited, by reason.",
                exits,
            ),
            family(
                "asgiserve_reloads_total",
                "counter",
                "Reloads (an edit, or SIGHUP) that replaced the serving workers.",
                single(supervisor.reloads),
            ),
        ]
    )


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> str:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{suffix}{labels_text(labels)} {number(v)}" for suffix, labels, v in samples]
    return "\n".join(lines) + "\n"


def single(value: float) -> list[Sample]:
    return [("", {}, value)]


def gauge(name: str, help_text: str, value: float) -> str:
    return family(name, "gauge", help_text, single(value))


def labels_text(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    # Label values here are digits, reasons and bounds: nothing to escape.
    return "{" + ",".join(f'{key}="{value}"' for key, value in labels.items()) + "}"


def number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))
