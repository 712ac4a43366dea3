"""The Prometheus exposition, read back by prometheus_client's own parser: every family has
its help and type, the histogram's buckets are cumulative up to +Inf, base units."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from django_asgiserve.insight.metrics_text import SupervisorFigures, render
from django_asgiserve.process.metrics_board import BUCKETS, Totals


def families() -> dict[str, object]:
    buckets = [0] * (len(BUCKETS) + 1)
    buckets[0], buckets[3], buckets[-1] = 2, 2, 1
    totals = Totals(
        statuses={200: 3, 404: 1, 0: 1},
        buckets=buckets,
        duration_seconds=12.5,
        in_flight=2,
        websockets_open=1,
        websockets_total=4,
    )
    figures = SupervisorFigures(workers=2, starts=5, exits={"crash": 1, "reload": 2}, reloads=1)
    text = render(totals, figures)
    assert text.endswith("\n")
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}


def test_every_family_has_its_type_and_help():
    found = {name: (family.type, bool(family.documentation)) for name, family in families().items()}
    assert found == {
        "asgiserve_http_requests": ("counter", True),
        "asgiserve_http_request_duration_seconds": ("histogram", True),
        "asgiserve_http_requests_in_flight": ("gauge", True),
        "asgiserve_websocket_connections_open": ("gauge", True),
        "asgiserve_websocket_connections": ("counter", True),
        "asgiserve_workers": ("gauge", True),
        "asgiserve_worker_starts": ("counter", True),
        "asgiserve_worker_exits": ("counter", True),
        "asgiserve_reloads": ("counter", True),
    }


def test_requests_by_status():
    assert samples(families()["asgiserve_http_requests"]) == {
        ("asgiserve_http_requests_total", (("status", "200"),)): 3,
        ("asgiserve_http_requests_total", (("status", "404"),)): 1,
        ("asgiserve_http_requests_total", (("status", "other"),)): 1,
    }


def test_the_histogram_is_cumulative():
    found = samples(families()["asgiserve_http_request_duration_seconds"])
    name = "asgiserve_http_request_duration_seconds"
    bounds = [*map(repr, BUCKETS), "+Inf"]
    cumulative = [found[(f"{name}_bucket", (("le", bound),))] for bound in bounds]
    assert cumulative == [2, 2, 2, 4, 4, 4, 4, 4, 4, 4, 4, 5]
    assert found[(f"{name}_count", ())] == 5
    assert found[(f"{name}_sum", ())] == 12.5


def test_the_supervisors_figures():
    found = families()
    assert samples(found["asgiserve_worker_exits"]) == {
        ("asgiserve_worker_exits_total", (("reason", reason),)): count
        for reason, count in (("crash", 1), ("reload", 2), ("recycle", 0), ("stop", 0))
    }
    assert samples(found["asgiserve_workers"]) == {("asgiserve_workers", ()): 2}
    assert samples(found["asgiserve_reloads"]) == {("asgiserve_reloads_total", ()): 1}
    assert samples(found["asgiserve_websocket_connections_open"]) == {
        ("asgiserve_websocket_connections_open", ()): 1
    }
