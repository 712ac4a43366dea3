"""A fleet under load: hosts in network namespaces behind nginx (``docs/nginx-fleet.conf``).

Continuous GETs through nginx while hosts are reloaded (SIGHUP), restarted (SIGTERM, then started
again) and killed (SIGKILL) one at a time; a Channels group message crossing hosts through Redis.
Figures (requests, failures, latencies, failover time) are printed and summarised at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import time

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.fleet.conftest import HOST_OPTIONS, HOSTS, NGINX_SITE, Fleet, Host, alive
from tests.helpers.load import Load, Outcome
from tests.helpers.netns import entered
from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.server import BACKENDS, REPO

pytestmark = pytest.mark.fleet

#: Clients of the load generator: each has at most one request in flight.
CONCURRENCY = 4


def summary(outcomes: list[Outcome]) -> dict[str, object]:
    latencies = [o.end - o.start for o in outcomes]
    return {
        "requests": len(outcomes),
        "failed": sum(o.failed for o in outcomes),
        "max latency s": round(max(latencies), 3) if latencies else None,
        "median latency ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
    }


def failures(outcomes: list[Outcome]) -> list[str]:
    return [f"{o.status} {o.error}" for o in outcomes if o.failed][:5]


def errors_in(output: str) -> list[str]:
    """The lines of a host's output about a failed request (its 5xx log lines, tracebacks and
    what follows them), wherever they are in it: a tail can miss them."""
    lines = output.splitlines()
    found: list[str] = []
    taken = 0  # lines before this one are in ``found`` already, or not about an error
    for number, line in enumerate(lines):
        if number < taken:
            continue
        if "Traceback" in line:
            found.extend(lines[number : number + 25])
            taken = number + 25
        elif '" 5' in line or "Error" in line:
            found.append(line)
    return found[:200]


def wait_in_rotation(load: Load, host: str, after: float) -> None:
    """Until nginx sends load to ``host`` again (after its fail_timeout, if it was marked down)."""
    wait_for(
        lambda: load.count(lambda o: o.start >= after and o.host == host),
        what=f"nginx sending requests to {host}",
    )


def wait_balanced(fleet: Fleet) -> None:
    """Until nginx answers from every host (one it marked down comes back after fail_timeout)."""
    seen: set[str] = set()

    def every_host() -> bool:
        with entered(fleet.lb), contextlib.suppress(httpx.HTTPError):
            seen.add(httpx.get(f"http://{fleet.lb_address}/host/", timeout=5).json()["host"])
        return seen >= set(HOSTS)

    wait_for(every_host, what="nginx sending requests to every host")


def reload(host: Host) -> None:
    """SIGHUP, then wait until every old worker has exited and a new one answers."""
    old = host.workers()
    assert old, f"no worker of {host.name} answers"
    os.kill(host.process.pid, signal.SIGHUP)
    wait_for(lambda: not any(alive(pid) for pid in old), what=f"{host.name}'s old workers exiting")
    new = wait_for(host.worker, what=f"a new worker of {host.name}")
    assert new not in old


def restart(fleet: Fleet, host: Host) -> Host:
    """SIGTERM (graceful drain), wait for the exit, start the host again, wait until it serves."""
    os.kill(host.process.pid, signal.SIGTERM)
    assert host.wait_exit() == 0, host.output
    return fleet.start(host.name).wait_ready()


def test_rolling_deploy_host_by_host(fleet, record):
    with Load(f"{fleet.balancer}/host/", CONCURRENCY, fleet.lb) as load:
        begin = time.monotonic()
        for name in HOSTS:
            wait_in_rotation(load, name, begin)
        phases: dict[str, tuple[float, float]] = {}
        for name in HOSTS:
            start = time.monotonic()
            reload(fleet.hosts[name])
            wait_in_rotation(load, name, time.monotonic())
            phases[f"SIGHUP {name}"] = (start, time.monotonic())
        for name in HOSTS:
            start = time.monotonic()
            restart(fleet, fleet.hosts[name])
            wait_in_rotation(load, name, time.monotonic())
            phases[f"SIGTERM+start {name}"] = (start, time.monotonic())
    outcomes = load.outcomes
    reloads = [o for o in outcomes if o.start < phases[f"SIGHUP {HOSTS[-1]}"][1]]
    restarts = [o for o in outcomes if o.start >= phases[f"SIGTERM+start {HOSTS[0]}"][0]]
    figures: dict[str, object] = {"total": summary(outcomes)}
    for phase, (start, end) in phases.items():
        figures[phase] = {**summary(load.between(start, end)), "seconds": round(end - start, 1)}
    figures["served by"] = {name: load.count(lambda o, n=name: o.host == n) for name in HOSTS}
    figures["failures seen"] = failures(outcomes)
    record(figures)

    assert all(figures["served by"].values()), figures["served by"]
    assert not any(o.failed for o in reloads), failures(reloads)
    # No drain delay needed today: nginx resends (proxy_next_upstream) what a draining host
    # refuses or drops before answering. Without that line, each SIGTERM cost 4 requests (502).
    assert not any(o.failed for o in restarts), failures(restarts)


def test_a_host_restart_under_posts(fleet, record):
    # nginx does not resend a POST it has sent: without --drain-delay (HOST_OPTIONS) one that
    # reaches a host as it stops fails (about 4 per SIGTERM, "Connection reset by peer while
    # reading response header"). With it, kept-alive connections end after an answer during the
    # delay and the port then refuses new connections, which nginx retries on the other host.
    # A few GETs beside the POSTs say which host answers: the next host is restarted only once
    # nginx sends to the restarted one again (the refusals marked it down for fail_timeout), as
    # a rolling deploy waits for each host to be back in rotation.
    with (
        Load(f"{fleet.balancer}/host/", CONCURRENCY, fleet.lb, method="POST") as load,
        Load(f"{fleet.balancer}/host/", 2, fleet.lb) as probes,
    ):
        begin = time.monotonic()
        load.wait_answered(begin, 200)
        for name in HOSTS:
            start = time.monotonic()
            restart(fleet, fleet.hosts[name])
            wait_in_rotation(probes, name, time.monotonic())
            load.wait_answered(time.monotonic(), 200)
        end = time.monotonic()
    # CSRF refuses the POSTs (403): an answer from Django, which is all this counts.
    outcomes = load.between(start, end)
    figures = {
        "backend": fleet.backend,
        **summary(load.outcomes),
        "answered 403": sum(o.status == 403 for o in load.outcomes),
        "host options": " ".join(HOST_OPTIONS) or "none",
        "failures seen": failures(load.outcomes),
    }
    record(figures)
    assert outcomes
    assert not any(o.failed for o in load.outcomes), failures(load.outcomes)


def test_a_host_restart_under_posts_on_every_backend(backend_fleet, record):
    # The drain of the test above on the other backends, lighter: one host restarted, and no
    # wait for nginx to send it requests again afterwards. The hosts take turns: the one
    # restarted by the previous backend's test may still be marked down (fail_timeout).
    fleet = backend_fleet
    host = fleet.hosts[HOSTS[BACKENDS.index(fleet.backend) % len(HOSTS)]]
    with (
        Load(f"{fleet.balancer}/host/", CONCURRENCY, fleet.lb, method="POST") as load,
        Load(f"{fleet.balancer}/host/", 2, fleet.lb) as probes,
    ):
        # A previous test's restart may have marked a host down for fail_timeout; the other
        # host must be back too, or nginx has no live upstream once this one stops (502s).
        now = time.monotonic()
        for name in HOSTS:
            wait_in_rotation(probes, name, now)
        log_start = len(fleet.network.nginx_log())
        load.wait_answered(time.monotonic(), 100)
        stopped = time.monotonic()
        restarted = restart(fleet, host)
        load.wait_answered(time.monotonic(), 100)
    figures = {
        "backend": fleet.backend,
        **summary(load.outcomes),
        "answered 403": sum(o.status == 403 for o in load.outcomes),
        "probes it answered while draining": probes.count(
            lambda o: o.start >= stopped and o.host == host.name
        ),
        "failures seen": failures(load.outcomes),
    }
    record(figures)
    # nginx sent the draining host requests: its drain was under load.
    assert figures["probes it answered while draining"]
    assert not any(o.failed for o in load.outcomes), (
        failures(load.outcomes),
        [round(o.start - stopped, 3) for o in load.outcomes if o.failed][:5],
        fleet.network.nginx_errors(log_start)[:10],
        {"drained": errors_in(host.output), "restarted": errors_in(restarted.output)},
        {name: errors_in(other.output) for name, other in fleet.hosts.items() if name != host.name},
        host.output[-3000:],
    )


def receive(client: ClientConnection) -> dict[str, object]:
    message = json.loads(client.recv(timeout=DEADLINE))
    assert isinstance(message, dict)
    return message


def test_a_group_message_crosses_hosts_through_redis(fleet, record):
    clients: dict[ClientConnection, dict[str, object]] = {}
    wait_balanced(fleet)
    with contextlib.ExitStack() as stack:
        # nginx takes turns: a few connections land on both hosts (two each, normally).
        while (
            len({hello["host"] for hello in clients.values()}) < len(HOSTS) or len(clients) < 4
        ) and len(clients) < 20:
            with entered(fleet.lb):
                client = stack.enter_context(
                    connect(f"ws://{fleet.lb_address}/ws/chat/", open_timeout=DEADLINE)
                )
            clients[client] = receive(client)
        hosts = {hello["host"] for hello in clients.values()}
        assert hosts == set(HOSTS), clients.values()

        crossed = expected = 0
        started = time.monotonic()
        for sender_host in HOSTS:
            sender = next(c for c, hello in clients.items() if hello["host"] == sender_host)
            sender.send(f"hello from {sender_host}")
            for client, hello in clients.items():
                message = receive(client)
                assert message == {
                    "text": f"hello from {sender_host}",
                    "from": clients[sender]["pid"],
                    "from_host": sender_host,
                    "pid": hello["pid"],
                    "host": hello["host"],
                }
                crossed += message["host"] != sender_host
                expected += hello["host"] != sender_host
        elapsed = time.monotonic() - started
    record(
        {
            "clients": len(clients),
            "per host": {h: sum(c["host"] == h for c in clients.values()) for h in HOSTS},
            "workers": len({(c["host"], c["pid"]) for c in clients.values()}),
            "messages sent": len(HOSTS),
            "deliveries": len(HOSTS) * len(clients),
            "deliveries across hosts": crossed,
            "seconds for all": round(elapsed, 3),
        }
    )
    assert crossed == expected > 0


def test_a_killed_host_costs_at_most_its_requests_in_flight(fleet, record):
    victim, survivor = fleet.hosts[HOSTS[0]], fleet.hosts[HOSTS[1]]
    with Load(f"{fleet.balancer}/host/", CONCURRENCY, fleet.lb) as load:
        begin = time.monotonic()
        for name in HOSTS:
            wait_in_rotation(load, name, begin)
        load.wait_answered(begin, 200)
        killed_at = time.monotonic()
        os.kill(victim.process.pid, signal.SIGKILL)
        # Its workers end with it (they watch the supervisor): wait until none is left.
        wait_for(lambda: not victim.group_pids(), what=f"{victim.name}'s workers ending")
        victim.process.wait(DEADLINE)
        # Long enough after the kill to see where nginx sends requests once it has noticed.
        load.wait_answered(killed_at + 1, 100)
        after = load.between(killed_at, time.monotonic())
    in_flight = [o for o in load.outcomes if o.start < killed_at <= o.end]
    affected = [o for o in load.outcomes if o.end >= killed_at]
    failed = [o for o in affected if o.failed]
    # Failover: from the kill until the first request started after the last failure (or after
    # the kill) that got an answer; its latency includes nginx's retry on the survivor.
    last_failure = max((o.start for o in failed), default=killed_at)
    first_ok = min(
        (o for o in after if o.start >= last_failure and not o.failed), key=lambda o: o.end
    )
    figures = {
        "before the kill": summary(load.between(begin, killed_at)),
        "in flight at the kill": len(in_flight),
        "failed": len(failed),
        "in-flight bound": CONCURRENCY,
        "after the kill": summary(after),
        "after, served by": {
            name: sum(o.host == name for o in after if o.start > killed_at + 1) for name in HOSTS
        },
        "failover s": round(first_ok.end - killed_at, 3),
        "failures seen": failures(affected),
    }
    record(figures)
    assert len(failed) <= CONCURRENCY, failures(affected)
    late = [o for o in after if o.start > killed_at + 1]
    assert late, "no request after the kill"
    assert all(o.host == survivor.name for o in late), "a killed host answered"
    assert survivor.worker() is not None


def test_the_deployment_guide_shows_the_tested_nginx_config():
    guide = (REPO / "docs" / "deployment.md").read_text()
    site = NGINX_SITE.read_text()
    assert site.strip() in guide, f"docs/deployment.md must show {NGINX_SITE.name} verbatim"
    for directive in (
        "proxy_next_upstream error timeout http_502 http_503;",
        "max_fails=",
        "fail_timeout=",
        "keepalive ",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
    ):
        assert directive in site, directive


def test_the_hosts_see_the_clients_address_through_nginx(fleet):
    # nginx appends the address it saw (its own namespace's) to the client's X-Forwarded-For;
    # the hosts trust only nginx's address, so the client named before it is REMOTE_ADDR.
    with entered(fleet.lb):
        response = httpx.get(
            f"{fleet.balancer}/headers/", headers={"X-Forwarded-For": "203.0.113.7"}, timeout=10
        )
    assert response.status_code == 200
    assert response.json()["remote_addr"] == "203.0.113.7"
    assert response.json()["scheme"] == "http"
