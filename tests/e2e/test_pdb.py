"""``--pdb`` through a pseudo-terminal, as a user at the terminal running asgiserve sees it: a
request whose view raises opens pdb at the raising frame, ``p`` shows a local, other requests are
served while the prompt waits, and ``c`` (or ``q``) sends the client Django's technical 500 page;
for an async view the event loop keeps serving. A middleware's exception too, and one prompt at a
time. Refused with --noreload, DEBUG off or several workers; without it, no prompt at all."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.commands import assert_fails_clearly, manage
from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.server import wait_for_nothing_left
from tests.helpers.spinning import busy_cores
from tests.helpers.terminal import Pending, TerminalServer

PROMPT = r"\(Pdb\) "
MESSAGE = "hello from testproject"


@pytest.fixture
def terminal(project: Path) -> Iterator[Callable[..., TerminalServer]]:
    """Start ``asgiserve`` on a terminal; each is killed, with its session, at teardown."""
    servers: list[TerminalServer] = []

    def starter(*args: str, env: dict[str, str] | None = None) -> TerminalServer:
        server = TerminalServer(project, [*args, "127.0.0.1:0"], env)
        servers.append(server)
        return server.wait_serving()

    yield starter
    for server in servers:
        server.kill()


def debug(server: TerminalServer, path: str, frame: str, local: str, value: str) -> Pending:
    """Request ``path``, wait for the prompt at ``frame``, print ``local`` there (``value``)."""
    pending = Pending(server.url + path)
    opened = server.wait_output(rf"\n> .*\(\d+\){frame}\(\)\n-> .*\n{PROMPT}")
    server.type(f"p {local}")
    server.wait_output(rf"{PROMPT}p {local}\n{re.escape(value)}\n{PROMPT}", opened.start())
    return pending


def test_the_prompt_at_the_raising_frame_then_the_500_page(terminal, backend):
    server = terminal("--pdb", "--backend", backend)
    failing = debug(server, "/divide/?by=0", "divide", "divisor", "0")
    assert "--pdb: ZeroDivisionError: division by zero in GET /divide/?by=0" in server.output
    # The view runs in a thread of its own: the worker keeps serving while the prompt waits.
    assert server.get("/sync/").text == MESSAGE
    assert not failing.done.is_set()
    server.type("c")
    response = failing.result()
    assert response.status_code == 500
    assert "ZeroDivisionError" in response.text and "divisor" in response.text  # technical 500
    # An async view: Django converts its exception in another thread, off the event loop.
    failing = debug(server, "/async-divide/", "async_divide", "divisor", "0")
    assert server.get("/async/").text == MESSAGE
    server.type("q")
    assert failing.result().status_code == 500
    assert server.get("/sync/").status_code == 200


def test_a_middlewares_exception_and_one_prompt_at_a_time(terminal):
    server = terminal("--pdb", env={"ASGISERVE_DEMO_FAILING_MIDDLEWARE": "1"})
    first = debug(
        server, "/fail-in-middleware/", "middleware", "reason", "'refused by the middleware'"
    )
    second = Pending(server.url + "/divide/")
    # The second failing request says it waits; its prompt opens only once the first ends.
    waits = server.wait_output(r"--pdb: ZeroDivisionError.*\nIts prompt opens when the one above")
    server.type("c")
    assert first.result().status_code == 500
    continued = server.wait_output(r"(?m)^c\n", waits.end()).end()  # the echo of what we typed
    server.wait_output(rf"\n> .*\(\d+\)divide\(\)\n-> .*\n{PROMPT}", continued)
    assert not second.done.is_set()
    server.type("c")
    assert second.result().status_code == 500


def test_ctrl_c_at_the_prompt_stops_everything_with_both_cores_busy(terminal, backend):
    with busy_cores():
        server = terminal("--pdb", "--backend", backend)
        failing = debug(server, "/divide/", "divide", "divisor", "0")
        server.signal_group(signal.SIGINT)
        assert server.process.wait(DEADLINE) == 0, server.output
        wait_for_nothing_left(server)
    wait_for(failing.done.is_set, what="the waiting request to end with the server")


def test_without_pdb_an_exception_waits_for_nobody(terminal):
    server = terminal()
    assert server.get("/divide/").status_code == 500
    assert "(Pdb)" not in server.output


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--noreload"], {}, "--pdb is for development: leave out --noreload."),
        ([], {"ASGISERVE_DEMO_DEBUG": "0"}, "--pdb shows your code and data in the terminal"),
        (["--workers", "2"], {}, "--pdb serves one worker"),
    ],
    ids=["noreload", "debug-off", "workers"],
)
def test_refused_where_it_cannot_work(project, args, env, message):
    result = manage(project, "asgiserve", "--pdb", *args, "127.0.0.1:0", env=env)
    assert_fails_clearly(result, f"CommandError: {message}")
