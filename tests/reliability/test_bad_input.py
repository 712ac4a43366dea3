"""Bad input: settings no one should write, and bytes no HTTP client would send.

``ASGISERVE`` values come from hypothesis, one settings module and one real
``manage.py asgiserve`` per example: each must serve, or exit non-zero with one clear message
naming the key and no traceback. Malformed requests, oversized headers and a slowloris attack
go to every backend with asgiserve's defaults, while a normal client keeps asking: it must
keep being answered, and each bad connection must get a 4xx or be closed.
"""

from __future__ import annotations

import itertools
import math
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers.commands import serve_or_exit
from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.server import BACKENDS, BANNER_URL, Server, copy_project
from tests.reliability.probes import Poller, answer_to, connect

pytestmark = pytest.mark.reliability

MESSAGE = "hello from testproject"


# -- ASGISERVE settings from hypothesis ---------------------------------------------------------


def source(value: object) -> str:
    """``value`` as Python source (``repr`` but for floats that have none: nan, inf)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{source(k)}: {source(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        items = ", ".join(source(v) for v in value)
        return f"[{items}]" if isinstance(value, list) else f"({items}{',' if value else ''})"
    return repr(value)


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(0, 9), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
good_options = {
    "uvicorn": {"http": "h11"},
    "hypercorn": {"h11_max_incomplete_size": 32768},
    "daphne": {"websocket_timeout": 60},
    "granian": {},
    "gunicorn": {},
}
#: Each key with values that are right for it, and anything at all.
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "BACKEND": st.sampled_from(["auto", *BACKENDS, "nope", "UVICORN", ""]),
    "OPTIONS": st.one_of(
        st.fixed_dictionaries({name: st.just(good_options.get(name, {}))})
        for name in [*BACKENDS, "nginx"]
    )
    | st.dictionaries(st.sampled_from(BACKENDS), st.dictionaries(names, junk, max_size=2)),
    "RUNSERVER": st.booleans(),
    "WATCH_PATHS": st.lists(st.sampled_from(["src", "/nonexistent", ""]), max_size=2),
    "WATCH_IGNORE": st.lists(st.sampled_from(["*.log", "node_modules", "[!"]), max_size=2),
    "GRACEFUL_TIMEOUT": st.none() | st.floats(0, 30) | st.integers(0, 30),
    "PROXY_HEADERS": st.booleans(),
    "FORWARDED_ALLOW_IPS": st.lists(
        st.sampled_from(["127.0.0.1", "::1", "10.0.0.0/8", "*", "10.0.0.300", "localhost"]),
        max_size=3,
    ),
    "LIFESPAN_SIGNALS": st.booleans(),
}
asgiserve_settings = st.one_of(
    st.dictionaries(
        st.sampled_from(list(VALUES)) | names.map(str.upper),
        junk,
        max_size=3,
    ),
    st.fixed_dictionaries({}, optional={key: value | junk for key, value in VALUES.items()}),
    junk,
)


class Outcome:
    """How one ``manage.py asgiserve`` run ended: serving, or exited with its output."""

    def __init__(
        self, project: Path, settings_module: str, args: tuple[str, ...] = ("127.0.0.1:0",)
    ) -> None:
        argv = ["manage.py", "asgiserve", "--noreload", "--settings", settings_module, *args]
        result, self.serving = serve_or_exit(project, argv, {"PYTHONDONTWRITEBYTECODE": "1"})
        self.code, self.stdout, self.stderr = result.code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def settings_project(tmp_path_factory) -> Path:
    return copy_project(tmp_path_factory.mktemp("settings") / "testproject")


def named_in(message: str, value: object) -> bool:
    """Whether ``message`` names a key of ``value`` (or says ASGISERVE is not a dict)."""
    if not isinstance(value, dict):
        return "ASGISERVE must be a dict" in message
    return any(repr(key) in message or f"[{key!r}]" in message for key in value)


def test_asgiserve_settings_serve_or_fail_clearly(settings_project, soak, record):
    examples = 100 if soak else 15
    counter = itertools.count()
    seen: dict[str, int] = {"served": 0, "refused": 0}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(asgiserve_settings)
    def check(value: object) -> None:
        name = f"settings_fuzz_{next(counter)}"
        (settings_project / "testproject" / f"{name}.py").write_text(
            f"from .settings import *  # noqa: F403\n\nASGISERVE = {source(value)}\n"
        )
        outcome = Outcome(settings_project, f"testproject.{name}")
        output = outcome.stdout + outcome.stderr
        assert "Traceback" not in output, (value, output)
        if outcome.serving:
            seen["served"] += 1
            return
        seen["refused"] += 1
        assert outcome.code != 0, (value, output)
        errors = [line for line in outcome.stderr.splitlines() if line.strip()]
        assert errors, (value, output)
        assert named_in(outcome.stderr, value), (value, output)

    try:
        check()
    finally:
        record(
            "ASGISERVE values from hypothesis, one manage.py asgiserve each",
            f"{seen['served'] + seen['refused']} examples",
            f"{seen['served']} served; {seen['refused']} refused with one message naming the "
            "key, exit 1, no traceback",
        )


#: Addresses are IP literals (and localhost) only: a host name would be looked up on the network.
addrports = st.one_of(
    st.text(alphabet="0123456789.:[]", max_size=16),
    st.builds(
        "{}:{}".format,
        st.sampled_from(["0", "127.0.0.1", "127.9.9.9", "localhost", "0.0.0.0", "[::1]", "[::]",
                         "[::ffff:127.0.0.1]", "192.0.2.1", "[2001:db8::1]", "1.2.3", "256.1.1.1"]),
        st.sampled_from(["0", "1", "65535", "65536", "99999", "00080", "-1", ""]),
    ),
)  # fmt: skip


def test_addrports_serve_or_fail_clearly(settings_project, soak, record):
    """``tests/test_addrport.py`` checks the parser in process; this runs the command."""
    examples = 60 if soak else 10
    seen: dict[str, int] = {"served": 0, "refused": 0}

    @settings(max_examples=examples, deadline=None, database=None)
    @given(addrports)
    def check(text: str) -> None:
        outcome = Outcome(settings_project, "testproject.settings", ("--skip-checks", text))
        output = outcome.stdout + outcome.stderr
        assert "Traceback" not in output, (text, output)
        if outcome.serving:
            seen["served"] += 1
            assert BANNER_URL.search(outcome.stdout), (text, output)
            return
        seen["refused"] += 1
        lines = [line for line in outcome.stderr.splitlines() if line.strip()]
        assert outcome.code != 0 and len(lines) == 1, (text, output)
        assert lines[0].startswith(("CommandError: ", "Error: ")), (text, output)

    try:
        check()
    finally:
        record(
            "addrport text from hypothesis, one manage.py asgiserve each",
            f"{seen['served'] + seen['refused']} examples",
            f"{seen['served']} served; {seen['refused']} refused with one line (CommandError: "
            "or runserver's Error:), exit != 0, no traceback",
        )


# -- bytes on the wire --------------------------------------------------------------------------

MALFORMED = {
    "binary garbage": bytes(range(256)) + b"\r\n\r\n",
    "request line without a method": b" / HTTP/1.1\r\nHost: a\r\n\r\n",
    "request line without a target": b"GET\r\nHost: a\r\n\r\n",
    "unknown HTTP version": b"GET / HTTP/7.3\r\nHost: a\r\n\r\n",
    "NUL in the target": b"GET /\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
    "header without a colon": b"GET / HTTP/1.1\r\nHost a\r\n\r\n",
    "space in a header name": b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
    "negative Content-Length": b"POST /sync/ HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
    "two different Content-Lengths": (
        b"POST /sync/ HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
    ),
    "a chunk size that is not hex": (
        b"POST /sync/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n"
    ),
}
OVERSIZED = {
    "a 100 KB header": b"GET /sync/ HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    "a 100 KB target": b"GET /sync/?" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
    "10,000 headers": b"GET /sync/ HTTP/1.1\r\nHost: a\r\n"
    + b"".join(b"X-%d: a\r\n" % n for n in range(10_000))
    + b"\r\n",
}


@pytest.fixture(scope="module", params=BACKENDS)
def defaults(request, tmp_path_factory):
    """One server per backend, started as a developer would: the defaults, the reloader on."""
    project = copy_project(tmp_path_factory.mktemp(request.param) / "testproject")
    server = Server(project, ["--skip-checks", "--backend", request.param, "127.0.0.1:0"])
    server.backend = request.param
    try:
        yield server.wait_serving()
    finally:
        server.kill()


#: Answers that are not a 4xx or a close, where a backend's server decides them, not asgiserve.
#: granian hands the request to the application before reading a chunked body; the bad chunk
#: then reaches the application as a disconnect, and granian answers the unanswered request 500.
KNOWN = {("granian", "a chunk size that is not hex"): "500"}


def is_refusal(answer: str) -> bool:
    return answer == "closed" or answer.startswith("4")


@pytest.mark.parametrize("kind", ["malformed", "oversized"])
def test_bad_requests_get_a_4xx_or_a_close(defaults, kind, record):
    cases = MALFORMED if kind == "malformed" else OVERSIZED
    with Poller(defaults.url + "/sync/", valid=MESSAGE.__eq__) as poller:
        answers = {name: answer_to(defaults.port, data) for name, data in cases.items()}
        wait_for(lambda: poller.ok >= 3, what="the normal client to be answered after them")
    summary = ", ".join(
        f"{answer} x{count}"
        for answer, count in sorted(
            {a: list(answers.values()).count(a) for a in answers.values()}.items()
        )
    )
    known = {
        name: answer
        for name, answer in answers.items()
        if KNOWN.get((defaults.backend, name)) == answer
    }
    record(
        f"{kind} requests ({defaults.backend})",
        f"{len(cases)} kinds ({', '.join(cases)}); a normal client meanwhile",
        f"answers: {summary}"
        + "".join(
            f" (known: {answer} for {name!r}, the server's own)" for name, answer in known.items()
        )
        + f"; normal client: {poller.summary()}",
    )
    wrong = {n: a for n, a in answers.items() if not is_refusal(a) and n not in known}
    assert not wrong, (wrong, defaults.output[-3000:])
    assert poller.refused == 0 and not poller.failures, poller.failures[:5]
    assert defaults.process.poll() is None


def test_slowloris(defaults, soak, record):
    """20 connections each sending one more header byte every 0.5 s."""
    seconds, count = (30.0, 20) if soak else (2.0, 20)
    slow = [connect(defaults.port) for _ in range(count)]
    closed: set[int] = set()
    request = itertools.cycle(b"GET /sync/ HTTP/1.1\r\nHost: a\r\nX-Slow: ")

    def trickle() -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            byte = bytes([next(request)])
            for index, sock in enumerate(slow):
                if index not in closed:
                    try:
                        sock.sendall(byte)
                    except OSError:
                        closed.add(index)
            time.sleep(0.5)

    attacker = threading.Thread(target=trickle, daemon=True)
    with Poller(defaults.url + "/sync/", valid=MESSAGE.__eq__) as poller:
        attacker.start()
        attacker.join(seconds + DEADLINE)
    for index, sock in enumerate(slow):
        closed.update([index] if peer_closed(sock) else [])
        sock.close()
    record(
        f"slowloris ({defaults.backend})",
        f"{count} connections, a header byte each per 0.5 s for {seconds:g} s; a normal "
        "client meanwhile",
        f"normal client: {poller.summary()}; slow connections closed by the server: "
        f"{len(closed)} of {count}",
    )
    assert poller.ok > 0 and poller.refused == 0 and not poller.failures, poller.failures[:5]
    assert defaults.process.poll() is None


def peer_closed(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
