"""systemd socket activation: with ``LISTEN_PID``/``LISTEN_FDS`` the server serves the sockets it
was handed (descriptors 3, 4, ...) instead of binding, and the port outlives the server."""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.helpers.edits import ORIGINAL, set_message
from tests.helpers.polling import wait_for

#: What systemd does before ``exec``: the sockets at descriptors 3.., LISTEN_PID = our own pid.
SYSTEMD_EXEC = (
    "-c",
    "import os, sys\n"
    "count = int(sys.argv[1])\n"
    "for n, fd in enumerate(sys.argv[2:2 + count]):\n"
    "    os.dup2(int(fd), 3 + n)\n"
    "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(count))\n"
    "os.execv(sys.executable, [sys.executable, *sys.argv[2 + count:]])\n",
)


def listening(host: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(128)
    return sock


def activated(start, sockets: list[socket.socket], *args: str, addrport: str | None = None):
    fds = tuple(sock.fileno() for sock in sockets)
    launcher = (*SYSTEMD_EXEC, str(len(fds)), *map(str, fds))
    return start(*args, addrport=addrport, launcher=launcher, pass_fds=fds)


def test_serves_the_activated_socket_and_leaves_it_open(start, backend):
    sock = listening()
    port = sock.getsockname()[1]
    server = activated(start, [sock], "--noreload", "--backend", backend).wait_serving()
    assert server.port == port, "the banner names the activated socket"
    assert server.get("/sync/").status_code == 200
    # The service manager owns the socket: after the server stops, connections still queue on it.
    server.signal_group(15)
    assert server.wait_exit() == 0
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_serves_every_activated_socket(start):
    first, second = listening(), listening()
    server = activated(start, [first, second], "--noreload").wait_serving()
    other = second.getsockname()[1]
    assert f"Also listening at http://127.0.0.1:{other}/" in server.stdout.text
    assert httpx.get(f"http://127.0.0.1:{other}/sync/", timeout=10).status_code == 200


def test_reloads_on_the_activated_socket(start, project):
    sock = listening()
    server = activated(start, [sock]).wait_serving()
    set_message(project / "demo" / "views.py", ORIGINAL, "from the activated socket")
    wait_for(lambda: "from the activated socket" in server.get("/sync/").text, what="the reload")


def test_an_address_with_activation_is_a_clear_error(start):
    server = activated(start, [listening()], "--noreload", addrport="127.0.0.1:0")
    assert server.wait_exit() == 1
    assert "leave out the address and port" in server.stderr.text
    assert "Traceback" not in server.output


@pytest.mark.parametrize("kind", [socket.SOCK_DGRAM, "unbound"])
def test_a_descriptor_that_is_not_a_listening_tcp_socket_is_a_clear_error(start, kind):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM if kind != "unbound" else 1)
    server = activated(start, [sock], "--noreload")
    assert server.wait_exit() == 1
    assert "descriptor 3 is not a listening TCP socket" in server.stderr.text
    assert "Traceback" not in server.output
