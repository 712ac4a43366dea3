"""HTTPS on every backend, HTTP/2 where the backend speaks it, HTTP/3 on hypercorn.

A throwaway CA (trustme) issues the server's certificate and every client verifies against it:
nothing here turns certificate verification off.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme
from websockets.asyncio.client import connect

from tests.helpers.commands import assert_fails_clearly, manage
from tests.helpers.edits import set_message
from tests.helpers.polling import DEADLINE, wait_for
from tests.helpers.server import BACKENDS, Server, wait_body
from tests.helpers.tls import H2C, HTTP_OVER_TLS

MESSAGE = "hello from testproject"


@dataclass
class Certificate:
    ca: trustme.CA
    certfile: Path
    keyfile: Path

    @property
    def args(self) -> tuple[str, ...]:
        return ("--certfile", str(self.certfile), "--keyfile", str(self.keyfile))

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    """A certificate for 127.0.0.1 and its key, as PEM files, from a CA only these tests trust."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certfile.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(keyfile))
    return Certificate(ca, certfile, keyfile)


def serve_https(start: Callable[..., Server], certificate: Certificate, *args: str) -> Server:
    server = start(*certificate.args, *args)
    server.verify = certificate.client_context()
    server.wait_serving()
    assert server.scheme == "https", server.output
    return server


# -- HTTPS and HTTP/2 ---------------------------------------------------------------------------


def test_https_with_the_backends_http_version(start, backend, certificate):
    server = serve_https(start, certificate, "--backend", backend)
    with httpx.Client(http2=True, verify=certificate.client_context(), timeout=10) as client:
        response = client.get(f"{server.url}/headers/")
    assert response.status_code == 200
    seen = response.json()
    assert (seen["scheme"], seen["is_secure"]) == ("https", True)
    expected = HTTP_OVER_TLS.get(backend)
    if expected is None:
        assert response.http_version in ("HTTP/1.1", "HTTP/2")
    else:
        assert response.http_version == expected
    # The request log names the protocol the client really spoke.
    server.wait_output(f'"GET /headers/ {response.http_version}" 200')


def test_websocket_over_wss(start, backend, certificate):
    server = serve_https(start, certificate, "--backend", backend)
    context = certificate.client_context()
    url = f"wss://127.0.0.1:{server.port}"

    # The asyncio client: the threaded one can block in an SSL read past its own timeouts.
    async def talk() -> tuple[str, str]:
        async with connect(f"{url}/ws/echo/", ssl=context, open_timeout=10) as websocket:
            await websocket.send("over TLS")
            echoed = await asyncio.wait_for(websocket.recv(), 10)
        async with connect(f"{url}/ws/scheme/", ssl=context, open_timeout=10) as websocket:
            scheme = await asyncio.wait_for(websocket.recv(), 10)
        return str(echoed), str(scheme)

    assert asyncio.run(asyncio.wait_for(talk(), DEADLINE)) == ("echo: over TLS", "wss")


def test_plain_http_to_the_tls_port_is_refused_and_the_server_keeps_serving(
    start, backend, certificate
):
    server = serve_https(start, certificate, "--backend", backend)
    worker = server.get("/pid/").text
    with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as plain:
        plain.sendall(b"GET /sync/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        received = b""
        # Until the server closes the connection: a server that waits for more hangs the test.
        while chunk := plain.recv(65536):
            received += chunk
    assert MESSAGE.encode() not in received
    assert not received.startswith(b"HTTP/1.1 2")
    response = server.get("/pid/")
    assert (response.status_code, response.text) == (200, worker), "the worker was replaced"
    assert "Traceback" not in server.output


def test_reload_over_https(start, project, backend, certificate):
    # The new worker is forked from the preloader, which imported the TLS machinery.
    server = serve_https(start, certificate, "--backend", backend)
    set_message(project / "demo" / "views.py", MESSAGE, "reloaded over TLS")
    wait_body(server, "/sync/", "reloaded over TLS")


@pytest.mark.parametrize("backend", sorted(H2C & set(BACKENDS)))
def test_h2c_prior_knowledge_on_a_plain_socket(start, backend):
    server = start("--backend", backend).wait_serving()
    with httpx.Client(http1=False, http2=True, timeout=10) as client:
        response = client.get(f"{server.url}/headers/")
    assert response.http_version == "HTTP/2"
    assert response.json()["scheme"] == "http"


# -- mistakes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--certfile", "{cert}"], "--certfile and --keyfile go together: give both"),
        (["--keyfile", "{key}"], "--certfile and --keyfile go together: give both"),
        (["--certfile", "missing.pem", "--keyfile", "{key}"], "--certfile 'missing.pem': no such"),
        (["--certfile", "{cert}", "--keyfile", "{other_key}"], "cannot be used together: "),
        (["--certfile", "{key}", "--keyfile", "{key}"], "cannot be used together: "),
        (["--certfile", "{cert}", "--keyfile", "{encrypted_key}"], "an encrypted key is not"),
    ],
    ids=[
        "certfile-only",
        "keyfile-only",
        "missing-file",
        "key-of-another-cert",
        "key-as-cert",
        "encrypted-key",
    ],
)
def test_bad_tls_files(project, tmp_path, certificate, args, message):
    other_key = tmp_path / "other-key.pem"
    certificate.ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other_key))
    encrypted_key = tmp_path / "encrypted-key.pem"
    encrypted_key.write_bytes(encrypted(certificate.keyfile.read_bytes()))
    paths = {
        "cert": certificate.certfile,
        "key": certificate.keyfile,
        "other_key": other_key,
        "encrypted_key": encrypted_key,
    }
    argv = [arg.format(**paths) for arg in args]
    result = manage(project, "asgiserve", "--noreload", *argv, "127.0.0.1:0")
    assert_fails_clearly(result, message)
    assert result.stderr.startswith("CommandError: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def encrypted(key_pem: bytes) -> bytes:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )


# -- HTTP/3 (hypercorn) -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "hide", "message"),
    [
        (["--backend", "uvicorn", "{tls}"], (), "--http3 is served by the hypercorn backend only"),
        (["--backend", "hypercorn"], (), "--http3 needs --https, or --certfile and --keyfile"),
        (["--backend", "hypercorn", "{tls}"], ("aioquic",), "HTTP/3 needs aioquic"),
        (["--backend", "hypercorn", "--workers", "2", "{tls}"], (), "--http3 serves one worker"),
    ],
    ids=["other-backend", "no-tls", "no-aioquic", "workers"],
)
def test_http3_refused(project, certificate, args, hide, message):
    argv = [part for arg in args for part in (certificate.args if arg == "{tls}" else [arg])]
    result = manage(project, "asgiserve", "--noreload", "--http3", *argv, "127.0.0.1:0", hide=hide)
    assert_fails_clearly(result, f"CommandError: {message}")


def test_http3_on_hypercorn_survives_a_reload(start, project, certificate):
    server = serve_https(start, certificate, "--backend", "hypercorn", "--http3")
    status, headers, body = wait_for(
        lambda: h3_get(server.port, "/headers/", certificate), what="an HTTP/3 response"
    )
    assert status == 200
    assert b'"scheme": "https"' in body and b'"is_secure": true' in body
    assert all(name == name.lower() for name, _ in headers)
    server.wait_output('"GET /headers/ HTTP/3" 200')
    # Clients learn of HTTP/3 from the Alt-Svc header of HTTPS responses.
    assert f'h3=":{server.port}"' in server.get("/sync/").headers.get("alt-svc", "")
    # A code change starts a worker from the preloader, which gets the UDP socket too.
    set_message(project / "demo" / "views.py", MESSAGE, "reloaded over QUIC")

    def reloaded() -> bool:
        answer = h3_get(server.port, "/sync/", certificate)
        return answer is not None and answer[2] == b"reloaded over QUIC"

    wait_for(reloaded, what="the new code over HTTP/3")


def h3_get(
    port: int, path: str, certificate: Certificate
) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
    """One HTTP/3 GET on a new QUIC connection: status, headers and body, or None on failure."""
    from aioquic.asyncio.client import connect as quic_connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import ConnectionTerminated

    class Client(QuicConnectionProtocol):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.http = H3Connection(self._quic)
            self.response: asyncio.Future[tuple[int, list, bytes]] = self._loop.create_future()
            self.headers: list[tuple[bytes, bytes]] = []
            self.body = b""

        def quic_event_received(self, event) -> None:
            if isinstance(event, ConnectionTerminated) and not self.response.done():
                self.response.set_exception(ConnectionError(event.reason_phrase))
            for received in self.http.handle_event(event):
                if isinstance(received, HeadersReceived):
                    self.headers += received.headers
                elif isinstance(received, DataReceived):
                    self.body += received.data
                if getattr(received, "stream_ended", False) and not self.response.done():
                    status = int(dict(self.headers)[b":status"])
                    headers = [h for h in self.headers if not h[0].startswith(b":")]
                    self.response.set_result((status, headers, self.body))

        async def get(self) -> tuple[int, list, bytes]:
            stream = self._quic.get_next_available_stream_id()
            self.http.send_headers(
                stream,
                [
                    (b":method", b"GET"),
                    (b":scheme", b"https"),
                    (b":authority", f"127.0.0.1:{port}".encode()),
                    (b":path", path.encode()),
                ],
                end_stream=True,
            )
            self.transmit()
            return await self.response

    async def request() -> tuple[int, list, bytes]:
        configuration = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
        configuration.load_verify_locations(cadata=certificate.ca.cert_pem.bytes())
        async with quic_connect(
            "127.0.0.1", port, configuration=configuration, create_protocol=Client
        ) as client:
            return await client.get()

    try:
        return asyncio.run(asyncio.wait_for(request(), 5))
    except (TimeoutError, ConnectionError, OSError):
        return None
