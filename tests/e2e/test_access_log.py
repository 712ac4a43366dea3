"""``--no-access-log`` and ``ASGISERVE["ACCESS_LOG"] = False``: no request log line at all, on
every backend, while Django's own logging (``Not Found: ...`` with DEBUG on) goes on."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers.polling import DEADLINE, wait_for


def requests_then_a_404(server, tag: str) -> None:
    """Two requests, then a 404 on the same connection (so the same worker): once its
    ``Not Found`` line is out, the line of each request before it would have been too."""
    with httpx.Client(base_url=server.url, timeout=DEADLINE) as client:
        assert client.get(f"/sync/?{tag}").status_code == 200
        assert client.get(f"/sync/?{tag}-again").status_code == 200
        assert client.get(f"/missing-{tag}/").status_code == 404
    wait_for(lambda: f"Not Found: /missing-{tag}/" in server.output, what="Django's 404 line")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_no_access_log_logs_no_request(start, backend, workers):
    server = start("--noreload", "--backend", backend, "--workers", workers, "--no-access-log")
    server.wait_serving()
    requests_then_a_404(server, "unlogged")
    assert '"GET /sync/?unlogged' not in server.output, server.output
    assert '"GET /missing-unlogged/' not in server.output, server.output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_access_log_setting_and_the_flag_over_it(project, start, backend, workers):
    settings = project / "testproject" / "settings.py"
    settings.write_text(settings.read_text() + '\nASGISERVE["ACCESS_LOG"] = False\n')
    quiet = start("--noreload", "--backend", backend, "--workers", workers).wait_serving()
    requests_then_a_404(quiet, "by-setting")
    assert '"GET /sync/?by-setting' not in quiet.output, quiet.output
    quiet.kill()

    logged = start("--noreload", "--backend", backend, "--workers", workers, "--access-log")
    logged.wait_serving()
    requests_then_a_404(logged, "by-flag")
    wait_for(lambda: '"GET /sync/?by-flag-again HTTP/1.1" 200' in logged.output, what="its line")
