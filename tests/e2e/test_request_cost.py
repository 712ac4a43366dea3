"""What each request cost in the log line, the sync-only middleware line and reload timing."""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers.server import child_environ, wait_body

COST = re.compile(
    r'"GET (\S+) HTTP/1\.1" 200 \d+ \((\d+) ms(?:, (\d+) quer(?:y|ies)(?: in ([\d.]+) ms)?)?\)'
)


def costs(output: str) -> dict[str, tuple[int, int | None]]:
    """Path -> (duration ms, queries) from the request log lines."""
    return {
        m.group(1): (int(m.group(2)), None if m.group(3) is None else int(m.group(3)))
        for m in COST.finditer(output)
    }


def wait_logged(server, path: str) -> tuple[int, int | None]:
    server.wait_output(f'"GET {path} HTTP/1.1"')
    return costs(server.output)[path]


def test_duration_and_queries(start):
    server = start("--backend", "uvicorn").wait_serving()
    server.get("/queries/?n=4")
    assert wait_logged(server, "/queries/?n=4")[1] == 4
    server.get("/async-queries/?n=3")
    assert wait_logged(server, "/async-queries/?n=3")[1] == 3
    server.get("/thread-sleep/?seconds=0.3")
    duration, queries = wait_logged(server, "/thread-sleep/?seconds=0.3")
    assert duration >= 300 and queries == 0


def test_async_orm_query_counts(start, project):
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"],
        cwd=project,
        env=child_environ(),
        check=True,
    )
    server = start("--backend", "uvicorn").wait_serving()
    server.get("/async-queries/?n=3&orm=1")
    assert wait_logged(server, "/async-queries/?n=3&orm=1")[1] == 3


@pytest.mark.parametrize("workers", [1, 2])
def test_concurrent_requests_each_count_their_own(start, backend, workers):
    server = start("--backend", backend, "--workers", str(workers)).wait_serving()
    # Each pauses in its thread (or on the loop) between queries, so that they overlap.
    paths = [f"/queries/?n={n}&pause=0.02" for n in range(1, 5)]
    paths += [f"/async-queries/?n={n}&pause=0.02" for n in range(5, 9)]
    with ThreadPoolExecutor(len(paths)) as pool:
        responses = list(pool.map(server.get, paths))
    assert all(r.status_code == 200 for r in responses)
    for path in paths:
        expected = int(re.search(r"n=(\d+)", path).group(1))
        assert wait_logged(server, path)[1] == expected, server.output


@pytest.mark.parametrize(
    ("args", "env", "expect"),
    [
        ([], {"ASGISERVE_DEMO_INSIGHT": '{"REQUEST_COST": false}'}, "none"),
        (["--noreload"], {}, "none"),
        (
            [],
            {"ASGISERVE_DEMO_DEBUG": "0", "DJANGO_ALLOWED_HOSTS": "127.0.0.1"},
            "duration",
        ),
    ],
)
def test_extras_off(start, args, env, expect):
    server = start("--backend", "uvicorn", *args, env=env).wait_serving()
    server.get("/queries/?n=2")
    server.wait_output('"GET /queries/?n=2 HTTP/1.1"')
    line = next(line for line in server.output.splitlines() if "/queries/?n=2 " in line)
    if expect == "none":
        assert line.endswith('"GET /queries/?n=2 HTTP/1.1" 200 9'), line
    else:
        assert re.search(r" 200 9 \(\d+ ms\)$", line), line


def test_bad_request_cost_setting(start):
    server = start(env={"ASGISERVE_DEMO_INSIGHT": '{"REQUEST_COST": "yes"}'})
    assert server.wait_exit() != 0
    assert "asgiserve.E008" in server.output and "REQUEST_COST" in server.output


SYNC_ONLY = "demo.middleware.sync_only_middleware"


def test_sync_only_middleware_named_once(start, project):
    server = start("--backend", "uvicorn", env={"ASGISERVE_DEMO_SYNC_MIDDLEWARE": "1"})
    server.wait_serving()
    server.wait_output(SYNC_ONLY)
    line = next(line for line in server.output.splitlines() if SYNC_ONLY in line)
    assert "Sync-only middleware" in line
    assert "both_ways_middleware" not in server.output
    assert "django.middleware" not in line
    views = project / "demo" / "views.py"
    views.write_text(views.read_text().replace("hello from testproject", "hello again"))
    server.wait_output("Reloaded in")
    server.wait_serving()
    assert server.output.count(SYNC_ONLY) == 1


@pytest.mark.parametrize(
    ("args", "env", "shown"),
    [
        ([], {}, False),
        (["--noreload"], {"ASGISERVE_DEMO_SYNC_MIDDLEWARE": "1"}, False),
        (["--noreload", "-v", "2"], {"ASGISERVE_DEMO_SYNC_MIDDLEWARE": "1"}, True),
    ],
)
def test_sync_only_middleware_when(start, args, env, shown):
    server = start("--backend", "uvicorn", *args, env=env).wait_serving()
    assert ("Sync-only middleware" in server.output) is shown, server.output


def line_with(server, needle: str) -> str:
    """The first line of the server's output that holds ``needle`` (waited for)."""
    server.wait_output(needle)
    return next(line for line in server.output.splitlines() if needle in line)


@pytest.mark.parametrize("verbosity", ["1", "2"])
def test_reload_timing(start, project, verbosity):
    server = start("--backend", "uvicorn", "-v", verbosity).wait_serving()
    views = project / "demo" / "views.py"
    views.write_text(views.read_text().replace("hello from testproject", "hello again"))
    line = line_with(server, "Reloaded in")
    if verbosity == "1":
        assert re.fullmatch(r"Reloaded in \d+ ms\.", line), line
    else:
        assert re.fullmatch(
            r"Reloaded in \d+ ms: change seen \+0 ms, classified \+\d+ ms, "
            r"(fork|preloader started) \+\d+ ms, application loaded \+\d+ ms\.",
            line,
        ), line
    assert server.output.index("changed, reloading.") < server.output.index("Reloaded in")
    wait_body(server, "/sync/", "hello again")
    if verbosity == "2":
        first = line_with(server, "after the change")
        assert re.fullmatch(
            r"First response \+\d+ ms after the change: worker \d+ warmed up in \d+ ms, "
            r"serving \+\d+ ms, request in \+\d+ ms, answered in \d+ ms\.",
            first,
        ), first
    else:
        assert "First response" not in server.output


def test_first_response_of_the_first_workers(start):
    server = start("--backend", "uvicorn", "-v", "2").wait_serving()
    first = line_with(server, "First response of worker")
    assert re.fullmatch(
        r"First response of worker \d+ \(warmed up in \d+ ms\): the request came \d+ ms after "
        r"it began serving and was answered in \d+ ms\.",
        first,
    ), first
    server.get("/sync/?second")
    server.get("/sync/?third")
    server.wait_output('"GET /sync/?third HTTP/1.1"')  # logged after the second's line would be
    assert server.output.count("First response") == 1
