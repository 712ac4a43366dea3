"""Production features done once in asgiserve's own ASGI layer, so the same on every backend:
proxy headers (``--proxy-headers``, ``--forwarded-allow-ips``) and the lifespan signals
(``ASGISERVE["LIFESPAN_SIGNALS"]``: ``worker_started`` and ``worker_stopping``).

The servers are real ``manage.py asgiserve`` processes and the clients real HTTP and WebSocket
clients, always connecting from 127.0.0.1: whether that peer is trusted decides the outcome.
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from websockets.sync.client import connect

from django_asgiserve.asgi.proxy_headers import TrustedProxies, forwarded_scope, trust_proxy_headers
from tests.helpers.commands import assert_fails_clearly, check_ids, manage, write_settings
from tests.helpers.polling import wait_for
from tests.helpers.server import killed_worker_reported, wait_workers_answering

CLIENT = "203.0.113.7"
#: What a chain of proxies in front of a TLS-terminating one would send.
FORWARDED = {"X-Forwarded-For": f"198.51.100.1, {CLIENT}", "X-Forwarded-Proto": "https"}
#: The fields of ``/headers/`` that proxy headers may change.
AS_SEEN_DIRECTLY = {"remote_addr": "127.0.0.1", "scheme": "http", "is_secure": False}
AS_FORWARDED = {"remote_addr": CLIENT, "scheme": "https", "is_secure": True}


def seen(server, headers: dict[str, str] | None = None) -> dict[str, object]:
    data = server.get("/headers/", headers=headers or {}).json()
    return {key: data[key] for key in AS_SEEN_DIRECTLY}


def serving(start, *args: str, backend: str = "uvicorn"):
    return start("--noreload", "--skip-checks", "--backend", backend, *args)


# -- proxy headers, on every backend ------------------------------------------------------------


def test_proxy_headers_are_ignored_by_default(start, backend):
    server = serving(start, backend=backend).wait_serving()
    assert seen(server, FORWARDED) == AS_SEEN_DIRECTLY


def test_proxy_headers_are_honoured_from_a_trusted_peer(start, backend):
    server = serving(start, "--proxy-headers", backend=backend).wait_serving()
    assert seen(server, FORWARDED) == AS_FORWARDED
    # The rightmost address that is not itself a trusted proxy is the client.
    chain = {"X-Forwarded-For": f"{CLIENT}, 127.0.0.1, ::1"}
    assert seen(server, chain)["remote_addr"] == CLIENT
    assert seen(server) == AS_SEEN_DIRECTLY
    assert seen(server, {"X-Forwarded-Proto": "ftp"})["scheme"] == "http"
    # WebSockets too, and the request log (outside which the rewrite happens) shows the client.
    with connect(
        f"ws://127.0.0.1:{server.port}/ws/echo/", additional_headers=FORWARDED, open_timeout=10
    ) as websocket:
        websocket.send("hi")
        assert websocket.recv(timeout=10) == "echo: hi"
    server.wait_output(f"WebSocket CONNECT /ws/echo/ [{CLIENT}:0]")


def test_proxy_headers_are_ignored_from_an_untrusted_peer(start, backend):
    server = serving(
        start, "--proxy-headers", "--forwarded-allow-ips", "10.0.0.1", backend=backend
    ).wait_serving()
    assert seen(server, FORWARDED) == AS_SEEN_DIRECTLY


# -- proxy headers: settings, command line, mistakes --------------------------------------------


def test_proxy_settings_with_networks_and_the_command_line_over_them(start, project):
    settings = write_settings(
        project,
        "settings_proxy",
        'ASGISERVE = {**ASGISERVE, "PROXY_HEADERS": True, '
        '"FORWARDED_ALLOW_IPS": ["10.0.0.0/8", "127.0.0.0/8"]}',
    )
    on = serving(start, "--settings", settings)
    off = serving(start, "--settings", settings, "--no-proxy-headers")
    narrower = serving(start, "--settings", settings, "--forwarded-allow-ips", "10.0.0.0/8")
    everyone = serving(start, "--settings", settings, "--forwarded-allow-ips", "*")
    assert seen(on.wait_serving(), FORWARDED) == AS_FORWARDED
    assert seen(off.wait_serving(), FORWARDED) == AS_SEEN_DIRECTLY
    assert seen(narrower.wait_serving(), FORWARDED) == AS_SEEN_DIRECTLY
    # Trusting every hop: the leftmost address is the client.
    assert seen(everyone.wait_serving(), FORWARDED)["remote_addr"] == "198.51.100.1"


@pytest.mark.parametrize("value", ["10.0.0.300", "localhost", "10.0.0.0/33", "127.0.0.1,,nope"])
def test_bad_forwarded_allow_ips(project, value):
    result = manage(
        project, "asgiserve", "--noreload", "--proxy-headers", "--forwarded-allow-ips", value
    )
    bad = value.rpartition(",")[2]
    assert_fails_clearly(
        result,
        "argument --forwarded-allow-ips: must be IP addresses or networks of trusted proxies, "
        f"or '*': '{bad}' is not an IP address or network",
        code=2,
    )


def test_proxy_and_lifespan_settings_mistakes_are_check_errors(project):
    typed = write_settings(
        project,
        "settings_typed",
        """ASGISERVE = {
    "PROXY_HEADER": True,
    "PROXY_HEADERS": "yes",
    "FORWARDED_ALLOW_IPS": "10.0.0.1",
    "LIFESPAN_SIGNALS": 1,
}""",
    )
    result = manage(project, "check", "--settings", typed)
    assert result.code == 1, result.output
    assert check_ids(result.output) == {"asgiserve.E002", "asgiserve.E008", "asgiserve.E009"}
    assert "HINT: Did you mean 'PROXY_HEADERS'?" in result.stderr
    assert "ASGISERVE['PROXY_HEADERS'] must be True or False." in result.stderr
    assert "ASGISERVE['LIFESPAN_SIGNALS'] must be True or False." in result.stderr
    assert "ASGISERVE['FORWARDED_ALLOW_IPS'] must be a list of strings." in result.stderr
    assert "Traceback" not in result.output

    malformed = write_settings(
        project,
        "settings_malformed",
        'ASGISERVE = {"FORWARDED_ALLOW_IPS": ["10.0.0.1", "10.0.0.x"]}',
    )
    result = manage(project, "check", "--settings", malformed)
    assert result.code == 1, result.output
    assert check_ids(result.output) == {"asgiserve.E011"}
    assert "'10.0.0.x' is not an IP address or network" in result.stderr
    # And the server refuses to start on it.
    result = manage(project, "asgiserve", "--noreload", "--settings", malformed, "127.0.0.1:0")
    assert_fails_clearly(
        result,
        "CommandError: ASGISERVE['FORWARDED_ALLOW_IPS'] must be IP addresses or networks of "
        "trusted proxies, or '*': '10.0.0.x' is not an IP address",
        "(asgiserve.E011)",
    )


def test_forwarded_scope_rules():
    """The rules themselves, on scopes as backends build them (IPv6, mapped addresses, ws)."""
    trusted = TrustedProxies(["10.0.0.0/8", "::1"])
    scope = {
        "type": "websocket",
        "scheme": "ws",
        "client": ("::ffff:10.1.2.3", 5000),
        "headers": [
            (b"x-forwarded-for", b"2001:db8::1"),
            (b"X-Forwarded-For", b"10.9.9.9"),
            (b"x-forwarded-proto", b"https"),
        ],
    }
    forwarded = forwarded_scope(scope, trusted)
    assert (forwarded["client"], forwarded["scheme"]) == (("2001:db8::1", 0), "wss")
    assert scope["client"] == ("::ffff:10.1.2.3", 5000), "the backend's scope is not changed"
    outsider = {**scope, "client": ("192.0.2.1", 5000)}
    assert forwarded_scope(outsider, trusted) is outsider
    blank = {
        "type": "http",
        "scheme": "http",
        "client": ("::1", 1),
        "headers": [(b"x-forwarded-for", b" , ")],
    }
    assert forwarded_scope(blank, trusted) is blank

    seen_scopes = []

    async def app(scope, receive, send):
        seen_scopes.append(scope)

    lifespan = {"type": "lifespan"}
    asyncio.run(trust_proxy_headers(app, trusted)(lifespan, None, None))
    assert seen_scopes == [lifespan]


# -- lifespan signals, on every backend ---------------------------------------------------------

#: Settings that also record ``worker_stopping`` (the demo app records ``worker_started``).
STOPPING_PROBE = """
from django_asgiserve.signals import worker_stopping


def say_stopping(sender, backend, **kwargs):
    print(f"worker_stopping received ({backend})", flush=True)


worker_stopping.connect(say_stopping, weak=False)
"""


def test_lifespan_signals_on_every_backend(start, project, backend):
    settings = write_settings(project, "settings_stopping", STOPPING_PROBE)
    server = serving(start, "--settings", settings, backend=backend).wait_serving()
    state = server.get("/lifespan/").json()
    assert (state["worker_started"], state["backend"]) == (True, backend)
    assert "worker_stopping received" not in server.output
    server.process.send_signal(signal.SIGTERM)  # the supervisor alone, as a service manager
    assert server.wait_exit() == 0, server.output
    assert f"worker_stopping received ({backend})" in server.stdout.text


def test_lifespan_signals_are_off_by_default(start, project):
    settings = write_settings(
        project, "settings_nosignals", 'ASGISERVE = {**ASGISERVE, "LIFESPAN_SIGNALS": False}'
    )
    server = serving(start, "--settings", settings).wait_serving()
    assert server.get("/lifespan/").json()["worker_started"] is False


def test_a_failing_receiver_is_shown_and_the_worker_serves(start, project):
    settings = write_settings(
        project,
        "settings_failing",
        """from django_asgiserve.signals import worker_started


def broken(sender, **kwargs):
    raise RuntimeError("cache warm-up failed")


worker_started.connect(broken, weak=False)""",
    )
    server = serving(start, "--settings", settings).wait_serving()
    # The demo's receiver, connected after the failing one, still ran.
    assert server.get("/lifespan/").json()["worker_started"] is True
    wait_for(lambda: "RuntimeError: cache warm-up failed" in server.stderr.text, what="traceback")
    assert "Error in a worker_started receiver" in server.stderr.text


# -- workers --------------------------------------------------------------------------------------


def worker_pids(server, requests: int = 60) -> set[int]:
    """Which worker processes answered ``requests`` fresh connections."""
    return {int(server.get("/pid/").text) for _ in range(requests)}


def gather_pids(server, pids: set[int]) -> set[int]:
    """``pids`` with the workers that answer a few more requests added."""
    pids.update(worker_pids(server, 10))
    return pids


def test_workers_share_the_socket_and_a_killed_one_is_replaced(start, backend):
    server = serving(start, "--workers", "2", backend=backend).wait_serving()
    seen_pids = wait_workers_answering(server, 2)
    supervisor = server.process.pid
    assert supervisor not in seen_pids
    victim = seen_pids.pop()
    os.kill(victim, signal.SIGKILL)
    server.wait_output(killed_worker_reported(backend, victim))
    # The port stays served throughout, and a new worker joins the survivor.
    replaced: set[int] = set()
    wait_for(
        lambda: gather_pids(server, replaced) - {victim} - seen_pids, what="a replacement worker"
    )
    assert victim not in worker_pids(server)
    assert server.process.poll() is None
