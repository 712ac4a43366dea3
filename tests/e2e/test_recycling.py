"""Worker recycling: under continuous requests on fresh connections each worker is replaced after
its share of requests (``--max-requests``) or once it holds too much memory
(``--max-worker-memory``), and no request fails meanwhile, on every backend and worker count; a
worker too big from the start is left alone, with one warning; bad values are refused."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from tests.helpers.commands import assert_fails_clearly, check_ids, manage, write_settings
from tests.helpers.polling import DEADLINE
from tests.helpers.procfs import status_kib

REQUESTS = 150
#: Requests served with --max-requests 0: more than any limit the other tests set.
ZERO_LIMIT_REQUESTS = 60
#: ``--max-worker-memory`` for the memory tests, in MiB: well above a fresh worker of the demo
#: project on any backend (checked), so that a few requests of /grow/ (20 MiB each) pass it.
MEMORY_LIMIT = 150
#: How far below the limit a fresh worker must be: three requests of /grow/, at least.
HEADROOM_MB = 60
#: What one process may have kept before the test gives up on its being replaced.
NEVER_REPLACED_MB = 1500
REPLACING = re.compile(
    r"Worker \d+ uses (\d+) MB(?: in its process \d+)? \(--max-worker-memory (\d+)\): "
    r"replacing it\."
)


def pids_serving(server, requests: int) -> set[str]:
    """The pids of the workers that answered ``requests`` requests of ``/pid/``, each on a fresh
    connection, as a balancer's would be."""
    pids = set()
    for _ in range(requests):
        response = httpx.get(f"{server.url}/pid/", timeout=30, headers={"Connection": "close"})
        assert response.status_code == 200, response.text
        pids.add(response.text.strip())
    return pids


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
    pids = pids_serving(server, REQUESTS)
    # 150 requests over workers of 20 to 25 each: several generations of workers served.
    assert len(pids) >= 4, pids
    # The supervisor says why (the count may have gone on while the worker's thread looked).
    served = re.findall(
        r"Worker \d+ served (\d+) requests \(--max-requests 20, --max-requests-jitter 5\): "
        r"replacing it\.",
        server.output,
    )
    assert served and all(int(count) >= 20 for count in served), server.output
    assert "Traceback" not in server.output, server.output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_workers_are_replaced_past_max_worker_memory(start, backend, workers):
    server = start(
        "--noreload",
        "--skip-checks",
        "--backend",
        backend,
        "--workers",
        workers,
        "--max-worker-memory",
        str(MEMORY_LIMIT),
    ).wait_serving("/pid/")
    first = int(server.get("/pid/").text)
    fresh_mb = status_kib(first, "VmRSS") // 1024
    assert fresh_mb < MEMORY_LIMIT - HEADROOM_MB, f"a fresh worker holds {fresh_mb} MiB already"

    # Every worker there was, and the replacement it needs, plus one: two generations at least.
    wanted = int(workers) + 2
    pids: set[int] = set()
    deadline = time.monotonic() + DEADLINE * 2
    while len(pids) < wanted or not REPLACING.search(server.output):
        assert time.monotonic() < deadline, f"only {pids} served:\n{server.output}"
        # A fresh connection each time, as a balancer's would be; each request keeps 20 MiB.
        response = httpx.get(f"{server.url}/grow/", timeout=30, headers={"Connection": "close"})
        assert response.status_code == 200, response.text
        pids.add(response.json()["pid"])
        assert response.json()["held_mb"] < NEVER_REPLACED_MB, f"not replaced:\n{server.output}"
    used, limit = map(int, REPLACING.search(server.output).groups())
    assert limit == MEMORY_LIMIT and used > MEMORY_LIMIT, server.output
    assert "Traceback" not in server.output, server.output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_worker_too_big_from_the_start_is_not_replaced(start, backend, workers):
    server = start(
        "--noreload",
        "--skip-checks",
        "--backend",
        backend,
        "--workers",
        workers,
        "--max-worker-memory",
        "1",
    ).wait_serving("/pid/")
    warning = "more than --max-worker-memory 1: a new worker would be as big"
    server.wait_output(warning)
    pids = {server.get("/pid/", headers={"Connection": "close"}).text for _ in range(5)}
    # Workers measure every second: over three seconds each has found itself too big again,
    # had it asked again.
    until = time.monotonic() + 3
    while time.monotonic() < until:
        response = server.get("/pid/", headers={"Connection": "close"})
        assert response.status_code == 200
        pids.add(response.text)
    assert len(pids) <= int(workers), pids
    assert "replacing it" not in server.output, server.output
    assert server.output.count(warning) == 1, server.output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_zero_and_empty_are_what_the_docs_say(start, backend, workers):
    """0 is no limit for the recycling options and no bound or none for the others, "" no health
    path and no metrics listener: the command takes them (the settings' defaults) as given."""
    server = start(
        "--noreload",
        "--skip-checks",
        "--backend",
        backend,
        "--workers",
        workers,
        "--max-requests=0",
        "--max-requests-jitter=0",
        "--max-worker-memory=0",
        "--startup-timeout=0",
        "--drain-delay=0",
        "--health-path=",
        "--metrics=",
    ).wait_serving("/pid/")
    pids = pids_serving(server, ZERO_LIMIT_REQUESTS)
    assert len(pids) <= int(workers), pids
    assert server.get("/healthz").status_code == 404
    assert "replacing it" not in server.output, server.output
    assert "Metrics at" not in server.output, server.output


#: What the option and the setting say of a value that is not a number of MiB.
NOT_MIB = "must be a whole number of MiB (0: no limit), not "


@pytest.mark.parametrize(("value", "shown"), [("-5", "-5"), ("512.5", "512.5"), ("lots", "'lots'")])
def test_bad_max_worker_memory_is_refused(project, value, shown):
    result = manage(project, "asgiserve", "--noreload", f"--max-worker-memory={value}")
    assert_fails_clearly(result, f"argument --max-worker-memory: {NOT_MIB}{shown}.", code=2)


def test_settings_keys_are_checked(project):
    settings = write_settings(
        project,
        "settings_limits",
        'ASGISERVE = {"STARTUP_TIMEOUT": "1m", "MAX_REQUESTS": -1, "MAX_REQUESTS_JITTER": 2.5,'
        ' "MAX_WORKER_MEMORY": "512M"}',
    )
    check = manage(project, "check", "--settings", settings)
    assert check.code == 1, check.output
    assert check_ids(check.output) == {f"asgiserve.E0{n}" for n in (18, 19, 20, 21)}
    assert "Traceback" not in check.output
    result = manage(project, "asgiserve", "--noreload", "--settings", settings, "127.0.0.1:0")
    assert_fails_clearly(
        result, "ASGISERVE['STARTUP_TIMEOUT'] must be a number of seconds", "(asgiserve.E018)"
    )


def test_settings_keys_take_effect_and_options_win(start, project):
    settings = write_settings(
        project, "settings_limits", 'ASGISERVE = {"MAX_REQUESTS": 10, "MAX_WORKER_MEMORY": 1}'
    )
    server = start("--noreload", "--settings", settings, "--max-worker-memory", "4096")
    server.wait_serving("/pid/")
    pids: set[str] = set()
    for _ in range(REQUESTS):
        pids.add(server.get("/pid/", headers={"Connection": "close"}).text)
        if len(pids) >= 3:
            break
    assert len(pids) >= 3, pids
    assert re.search(r"served \d+ requests \(--max-requests 10\): replacing it", server.output)
    # --max-worker-memory 4096 won over the setting's 1 MiB, which every worker is past.
    assert "--max-worker-memory" not in server.output, server.output
