"""Scraping ``--metrics``: the URL from a server's banner, and the Prometheus text parsed by
``prometheus_client``'s own parser (so a scrape that Prometheus could not read fails the test)
into samples looked up by name and labels."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.polling import wait_for
from tests.helpers.server import Server

METRICS_URL = re.compile(r"Metrics at (http://\S+/metrics)")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Key = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class Scrape:
    """One scrape: every sample, and each family's type and help."""

    samples: dict[Key, float]
    types: dict[str, str]
    helps: dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        """A sample's value (0 when it is absent, as a counter that never moved)."""
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def since(self, before: Scrape, name: str, **labels: str) -> float:
        return self.value(name, **labels) - before.value(name, **labels)

    def by_label(self, name: str, label: str) -> dict[str, float]:
        """``{label value: value}`` of every sample of ``name`` (e.g. requests by status)."""
        return {
            dict(labels)[label]: value
            for (sample, labels), value in self.samples.items()
            if sample == name
        }


def parse(text: str) -> Scrape:
    samples: dict[Key, float] = {}
    types, helps = {}, {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        helps[family.name] = family.documentation
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return Scrape(samples, types, helps)


def scrape(url: str) -> Scrape:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    return parse(response.text)


def metrics_url(server: Server) -> str:
    """The scrape URL the banner shows (``--metrics`` on port 0 says which port it got)."""
    match = wait_for(lambda: METRICS_URL.search(server.stdout.text), what="the metrics URL")
    assert isinstance(match, re.Match)
    return match.group(1)


SERIES = re.compile(r'(\w+)(?:\{(\w+)="([^"]*)"\})?$')


def series(text: str) -> tuple[str, dict[str, str]]:
    """``'name{label="value"}'`` (one label at most) as a name and its labels."""
    match = SERIES.match(text)
    assert match is not None, text
    name, label, value = match.groups()
    return name, ({label: value} if label else {})


def changes(url: str, before: Scrape, expected: dict[str, float]) -> Scrape:
    """Wait until each series of ``expected`` (``'name{label="value"}'``) moved by exactly that
    much since ``before`` (a worker counts a request just after its response is out); that
    scrape."""
    last: dict[str, float] = {}

    def settled() -> Scrape | None:
        now = scrape(url)
        for text in expected:
            name, labels = series(text)
            last[text] = now.since(before, name, **labels)
        return now if last == expected else None

    try:
        found = wait_for(settled, what=f"the metrics to move by {expected}")
    except pytest.fail.Exception:
        print(f"they moved by {last}")
        raise
    assert isinstance(found, Scrape)
    return found
