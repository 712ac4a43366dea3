"""A large static file sent to a slow client is streamed: the serving worker does not hold it in
memory, on any backend (Django's own ASGI static handler reads a whole file first, and a server
without backpressure would buffer it all for a slow reader)."""

from __future__ import annotations

import socket
import threading

from tests.helpers.procfs import status_kib

SIZE = 48 * 1024 * 1024
#: Growth allowed while the file is sent: buffers and allocator slack, far below the file.
ALLOWED_GROWTH = SIZE // 4
NAME = "large.bin"


def test_a_large_static_file_to_a_slow_client_is_not_held_in_memory(start, project, backend):
    static = project / "demo" / "static" / "demo" / NAME
    block = bytes(range(256)) * 4096
    with static.open("wb") as file:
        for _ in range(SIZE // len(block)):
            file.write(block)
    server = start("--noreload", "--skip-checks", "--backend", backend).wait_serving()
    worker = int(server.get("/pid/").text)
    before = peak = status_kib(worker, "VmRSS") * 1024
    received = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, status_kib(worker, "VmRSS") * 1024)
            done.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        client.sendall(f"GET /static/demo/{NAME} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        # A slow reader first: the server has the whole file ready to send and nowhere to put it
        # but its own buffers. Then read the rest at full speed.
        first = client.recv(64 * 1024)
        assert first.startswith(b"HTTP/1.1 200"), first[:200]
        received = len(first) - first.index(b"\r\n\r\n") - 4
        for _ in range(20):
            done.wait(0.05)  # paced reading is the scenario itself, not a synchronisation
            received += len(client.recv(64 * 1024))
        while received < SIZE:
            chunk = client.recv(1024 * 1024)
            assert chunk, f"connection closed after {received} of {SIZE} bytes"
            received += len(chunk)
    done.set()
    sampler.join()
    assert received == SIZE
    assert peak - before < ALLOWED_GROWTH, (
        f"{backend}: the worker grew by {(peak - before) >> 20} MB sending a {SIZE >> 20} MB file"
    )
