"""The event-loop watchdog: one warning per blocked loop, naming the request and the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.server import Server

WARNING = "Event loop blocked for"


def sleep_line(project: Path) -> int:
    """The line of ``time.sleep`` in the demo's blocking async view."""
    lines = (project / "demo" / "views.py").read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if "# blocks the loop" in line)


def settle(server: Server, marker: str) -> None:
    """Wait until a request made now has been logged: whatever came before is in the output."""
    server.get(f"/sync/?{marker}")
    server.wait_output(f"GET /sync/?{marker} ")


@pytest.mark.parametrize("workers", [1, 2])
def test_blocking_async_view_warns_once(start, project, backend, workers):
    server = start("--backend", backend, "--workers", str(workers)).wait_serving()
    assert server.get("/blocking/?seconds=0.3").text == "slept"
    server.wait_output(WARNING)
    settle(server, "after")
    output = server.output
    assert output.count(WARNING) == 1, output
    warning = output[output.index(WARNING) :]
    assert 'serving "GET /blocking/?seconds=0.3' in warning.splitlines()[0], warning
    assert f"demo/views.py:{sleep_line(project)} in blocking: time.sleep(seconds)" in warning
    assert "in time.sleep\n" in warning


def test_healthy_views_do_not_warn(start, backend):
    # 200 ms: a busy test machine may delay a callback by tens of ms; the sync view's
    # 300 ms sleep in its thread is still longer than the threshold.
    server = start("--backend", backend, "--loop-warn-ms", "200").wait_serving()
    for _ in range(3):
        server.get("/async/")
        assert server.get("/thread-sleep/?seconds=0.3").text == "slept"
    server.get("/slow/?seconds=0.5")  # awaits asyncio.sleep: the loop runs meanwhile
    settle(server, "after")
    assert WARNING not in server.output, server.output


@pytest.mark.parametrize(
    ("args", "env", "warns"),
    [
        (["--loop-warn-ms", "0"], {}, False),
        (["--loop-warn-ms", "2000"], {}, False),
        ([], {"ASGISERVE_DEMO_INSIGHT": '{"LOOP_WARN_MS": 0}'}, False),
        ([], {"ASGISERVE_DEMO_INSIGHT": '{"LOOP_WARN_MS": 2000}'}, False),
        (["--loop-warn-ms", "100"], {"ASGISERVE_DEMO_INSIGHT": '{"LOOP_WARN_MS": 0}'}, True),
        (["--noreload"], {}, False),
        (["--noreload"], {"ASGISERVE_DEMO_INSIGHT": '{"LOOP_WARN_MS": 100}'}, True),
        (["--noreload", "--loop-warn-ms", "100"], {}, True),
    ],
)
def test_threshold(start, args, env, warns):
    server = start("--backend", "uvicorn", *args, env=env).wait_serving()
    server.get("/blocking/?seconds=0.4")
    if warns:
        server.wait_output(WARNING)
    settle(server, "after")
    assert (WARNING in server.output) is warns, server.output


@pytest.mark.parametrize("value", ['"fast"', "-1", "true"])
def test_bad_setting(start, value):
    server = start(env={"ASGISERVE_DEMO_INSIGHT": f'{{"LOOP_WARN_MS": {value}}}'})
    assert server.wait_exit() != 0
    assert "asgiserve.E013" in server.output
    assert "Traceback" not in server.output


def test_bad_option(start):
    server = start("--loop-warn-ms", "soon")
    assert server.wait_exit() != 0
    assert "--loop-warn-ms" in server.stderr.text
    assert "Traceback" not in server.output
