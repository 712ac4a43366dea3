"""Without the reloader, a project that never serves makes the command fail with the reason:
no worker ready within ``--startup-timeout``, or workers crashing in a row with none serving."""

from __future__ import annotations

import pytest

from tests.helpers.polling import DEADLINE

HANGING_URLS = "import time\n\ntime.sleep(3600)\nurlpatterns = []\n"
#: Each worker dies half a second after it imported the URLconf (so after it said it is ready).
DYING_URLS = (
    "import os\nimport threading\n\n"
    "threading.Timer(0.5, os._exit, (3,)).start()\nurlpatterns = []\n"
)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_no_worker_ready_within_the_startup_timeout(start, project, workers):
    (project / "testproject" / "urls.py").write_text(HANGING_URLS)
    server = start("--noreload", "--skip-checks", "--workers", workers, "--startup-timeout", "3")
    assert server.wait_exit(DEADLINE * 2) == 1, server.output
    assert "CommandError: No worker became ready within 3 seconds" in server.stderr.text
    assert "Traceback" not in server.output, server.output
    assert server.group_pids() == [], "a hanging worker was left behind"


def test_workers_crashing_in_a_row_stop_the_server(start, project):
    (project / "testproject" / "urls.py").write_text(DYING_URLS)
    server = start("--noreload", "--skip-checks")
    assert server.wait_exit(DEADLINE * 2) == 1, server.output
    assert "CommandError: Workers crashed 5 times in a row with none serving" in server.stderr.text
    assert "Traceback" not in server.output
