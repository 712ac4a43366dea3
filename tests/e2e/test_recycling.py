"""``--max-requests``: under continuous requests on fresh connections each worker is replaced
after its share, and no request fails meanwhile, on every backend and worker count."""

from __future__ import annotations

import httpx
import pytest

REQUESTS = 150


@pytest.mark.parametrize("workers", ["1", "2"])
def test_workers_are_replaced_past_max_requests(start, backend, workers):
    server = start(
        "--noreload",
        "--skip-checks",
        "--backend",
        backend,
        "--workers",
        workers,
        "--max-requests",
        "20",
        "--max-requests-jitter",
        "5",
    ).wait_serving("/pid/")
    pids = set()
    for _ in range(REQUESTS):
        # A fresh connection each time, as a balancer's would be.
        response = httpx.get(f"{server.url}/pid/", timeout=30, headers={"Connection": "close"})
        assert response.status_code == 200, response.text
        pids.add(response.text.strip())
    # 150 requests over workers of 20 to 25 each: several generations of workers served.
    assert len(pids) >= 4, pids
    assert "Traceback" not in server.output, server.output
