"""The smallest proof that a real server answers, for each backend."""

from __future__ import annotations


def test_serves_sync_view(start, backend):
    server = start("--noreload", "--backend", backend).wait_serving()
    assert server.get("/sync/").text == "hello from testproject"
