"""``--https``: a local certificate authority made on first use and reused, whose certificates
clients verify strictly (``VERIFY_X509_STRICT``, Python 3.13's default), served on every backend
with its HTTP version, with workers and reloads; renewal, two servers starting at once, the
setting, the mistakes, and the tests' live server over HTTPS.

Every test keeps the authority in a directory of its own (``local_ca``); nothing here turns
verification off. Browsers are in ``test_https_browser.py``; the trust command in
``test_asgiserve_ca.py``.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import signal
import socket
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from django_asgiserve.https import authority, location, names
from tests.helpers.commands import assert_fails_clearly, manage, serve_or_exit, write_settings
from tests.helpers.edits import set_message
from tests.helpers.local_ca import LocalCA, serve_https, served_certificate
from tests.helpers.polling import wait_for
from tests.helpers.server import Server, wait_body, wait_for_nothing_left
from tests.helpers.spinning import busy_cores
from tests.helpers.tls import HTTP_OVER_TLS

MESSAGE = "hello from testproject"
MADE = "Made a local certificate authority in"
IN_THREAD_BACKENDS = ("uvicorn", "hypercorn", "granian")


def alternative_names(certificate: x509.Certificate) -> set[str]:
    san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {*san.get_values_for_type(x509.DNSName)} | {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }


def check_https(server: Server, backend: str, local_ca: LocalCA) -> None:
    """The banner says https, and a strict client gets the backend's HTTP version."""
    assert f"server at https://127.0.0.1:{server.port}/" in server.stdout.text
    with httpx.Client(http2=True, verify=local_ca.context(), timeout=10) as client:
        # By name as a browser would: the certificate covers localhost too.
        response = client.get(f"https://localhost:{server.port}/headers/")
    assert response.status_code == 200
    assert (response.json()["scheme"], response.json()["is_secure"]) == ("https", True)
    assert response.http_version == HTTP_OVER_TLS[backend]


def test_every_backend_serves_https_with_its_http_version_and_reloads(
    start, project, backend, local_ca
):
    server = serve_https(start, local_ca, "--backend", backend)
    assert MADE in server.stdout.text
    check_https(server, backend, local_ca)
    set_message(project / "demo" / "views.py", MESSAGE, "reloaded over local HTTPS")
    wait_body(server, "/sync/", "reloaded over local HTTPS")


def test_two_workers_a_reload_and_ctrl_c_with_both_cores_busy(start, project, backend, local_ca):
    with busy_cores():
        server = serve_https(start, local_ca, "--backend", backend, "--workers", "2")
        assert MADE in server.stdout.text
        check_https(server, backend, local_ca)
        set_message(project / "demo" / "views.py", MESSAGE, "reloaded while busy")
        wait_body(server, "/sync/", "reloaded while busy")
        server.signal_group(signal.SIGINT)
        assert server.wait_exit() == 0, server.output
        wait_for_nothing_left(server)


def test_the_authority_is_made_once_and_reused(start, local_ca):
    first = serve_https(start, local_ca)
    served = served_certificate(first.port, local_ca.context())
    authority_pem = local_ca.ca_file.read_bytes()
    first.kill()
    second = serve_https(start, local_ca)
    assert MADE not in second.output
    assert local_ca.ca_file.read_bytes() == authority_pem
    assert served_certificate(second.port, local_ca.context()) == served
    assert alternative_names(served) == {"localhost", "127.0.0.1", "::1"}
    assert local_ca.directory.stat().st_mode & 0o777 == 0o700
    keys = sorted(local_ca.directory.glob("*-key.pem"))
    assert len(keys) == 2  # the authority's and the server certificate's
    assert {key.stat().st_mode & 0o777 for key in keys} == {0o600}


def test_a_certificate_near_its_end_is_renewed(start, local_ca):
    wanted = names.for_hosts(["127.0.0.1"])
    files = authority.server_files(wanted, local_ca.directory)
    made, _ = authority.ensure(local_ca.directory)
    short, key = authority.issue(made, wanted, days=1)
    location.write(files.keyfile, authority.private_pem(key), location.PRIVATE)
    location.write(files.certfile, short.public_bytes(Encoding.PEM), location.PUBLIC)
    server = serve_https(start, local_ca)
    served = served_certificate(server.port, local_ca.context())
    assert served != short
    remaining = served.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=360) < remaining <= datetime.timedelta(days=365)
    assert MADE not in server.output  # the same authority: nothing to trust again


def test_every_interface_adds_the_hostname(start, local_ca):
    server = serve_https(start, local_ca, addrport="0.0.0.0:0")
    covered = alternative_names(served_certificate(server.port, local_ca.context()))
    hostname = socket.gethostname().lower()
    expected = {"localhost", "127.0.0.1", "::1"}
    if names.is_dns_name(hostname):
        expected.add(hostname)
    assert covered == expected


def test_two_servers_starting_at_once_make_one_authority(start, local_ca):
    directory = location.prepare(local_ca.directory)
    lock = directory / "lock"
    with busy_cores(), open(lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        first = start("--https", env=local_ca.env)
        second = start("--https", env=local_ca.env)
        # Both are at the authority's door: neither can have made one yet.
        wait_for(lambda: waiting_on(lock) == 2, what="both servers to wait for the lock")
        assert not local_ca.ca_file.exists()
        fcntl.flock(held, fcntl.LOCK_UN)
        for server in (first, second):
            server.wait_output("Quit the server with")
            server.verify = local_ca.context()
            server.wait_serving()
    assert [MADE in server.output for server in (first, second)].count(True) == 1
    for server in (first, second):
        served_certificate(server.port, local_ca.context())  # verified by the one authority


def waiting_on(path: Path) -> int:
    """How many processes wait for a lock on ``path`` (Linux's /proc/locks: "->" lines)."""
    inode = os.stat(path).st_ino
    lines = Path("/proc/locks").read_text().splitlines()
    return sum("->" in line and line.split()[-3].endswith(f":{inode}") for line in lines)


# -- the setting and the mistakes ---------------------------------------------------------------


def banner(project: Path, *args: str, env: dict[str, str]) -> str:
    result, serving = serve_or_exit(project, ["manage.py", "asgiserve", *args, "127.0.0.1:0"], env)
    assert serving, result.output
    return result.stdout


def test_the_setting_turns_it_on_and_the_command_line_off(project, local_ca, tmp_path):
    module = write_settings(project, "https_settings", 'ASGISERVE = {"HTTPS": True}')
    env = {**local_ca.env, "DJANGO_SETTINGS_MODULE": module}
    assert "server at https://" in banner(project, "--noreload", env=env)
    assert "server at http://" in banner(project, "--noreload", "--no-https", env=env)


def test_the_setting_gives_way_to_certfile(project, local_ca):
    module = write_settings(project, "https_settings", 'ASGISERVE = {"HTTPS": True}')
    files = authority.server_files(names.for_hosts([]), local_ca.directory.parent / "other")
    tls = ("--certfile", str(files.certfile), "--keyfile", str(files.keyfile))
    env = {**local_ca.env, "DJANGO_SETTINGS_MODULE": module}
    assert "server at https://" in banner(project, "--noreload", *tls, env=env)
    assert not local_ca.directory.exists(), "--https's authority was made anyway"


def test_https_with_certfile_is_refused(project, local_ca):
    files = authority.server_files(names.for_hosts([]), local_ca.directory)
    for tls in (("--certfile", str(files.certfile)), ("--keyfile", str(files.keyfile))):
        result = manage(project, "asgiserve", "--https", *tls, "127.0.0.1:0", env=local_ca.env)
        assert_fails_clearly(
            result, "CommandError: --https makes its own certificate: leave out --certfile"
        )


def test_without_cryptography_the_extra_is_named(project, local_ca):
    result = manage(
        project, "asgiserve", "--https", "127.0.0.1:0", hide=("cryptography",), env=local_ca.env
    )
    assert_fails_clearly(
        result,
        "CommandError: --https needs the cryptography package, which is not installed.",
        'pip install "django-asgiserve[https]"',
    )


def test_a_directory_that_cannot_be_made_is_one_clear_error(project, local_ca, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**local_ca.env, location.ENVIRON_KEY: str(blocker / "ca")}
    result = manage(project, "asgiserve", "--https", "127.0.0.1:0", env=env)
    assert_fails_clearly(result, f"--https cannot keep its certificate authority in {blocker}")


def test_xdg_data_home_is_where_it_lives_by_default(project, local_ca, tmp_path):
    env = {"HOME": str(local_ca.home), "XDG_DATA_HOME": str(tmp_path / "data")}
    banner(project, "--noreload", "--https", env=env)
    assert (tmp_path / "data" / "django-asgiserve" / "ca.pem").is_file()
    env.pop("XDG_DATA_HOME")
    banner(project, "--noreload", "--https", env=env)
    assert (local_ca.home / ".local" / "share" / "django-asgiserve" / "ca.pem").is_file()


# -- the tests' live server ---------------------------------------------------------------------


#: This module is the live server's URLconf: it routes nothing, so Django answers 404.
urlpatterns: list[object] = []


@pytest.mark.parametrize("backend", IN_THREAD_BACKENDS)
def test_the_live_server_over_https(backend, local_ca, monkeypatch, settings):
    from django_asgiserve.live.server import ASGILiveServer

    settings.ROOT_URLCONF = __name__
    monkeypatch.setenv(location.ENVIRON_KEY, str(local_ca.directory))
    server = ASGILiveServer(backend=backend, https=True)
    server.start()
    try:
        assert server.url == f"https://127.0.0.1:{server.port}"
        assert server.ca_file == local_ca.ca_file
        # Django answers (404: the test settings route nothing), over verified TLS.
        response = httpx.get(f"{server.url}/nothing/", verify=local_ca.context(), timeout=10)
        assert response.status_code == 404
    finally:
        server.stop()
