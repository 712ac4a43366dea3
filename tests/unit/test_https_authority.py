"""The local certificate authority in process: what its certificates contain (read back with
``cryptography``), a TLS handshake under ``VERIFY_X509_STRICT``, the files' modes, reuse and
renewal, where it lives on each platform, the names a certificate covers, and the trust
commands planned for macOS and Windows (not run here)."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import stat
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from django_asgiserve.https import authority, inventory, location, names, trust
from tests.helpers.tls import strict_context

DEFAULT = names.for_hosts([])


def extension(certificate: x509.Certificate, kind: type) -> x509.Extension:
    return certificate.extensions.get_extension_for_class(kind)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_the_authority_is_a_strict_ca(tmp_path):
    authority.server_files(DEFAULT, tmp_path)
    ca = load(tmp_path / "ca.pem")
    constraints = extension(ca, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = extension(ca, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    assert extension(ca, x509.SubjectKeyIdentifier).value.digest
    assert ca.subject == ca.issuer
    assert ca.not_valid_after_utc - ca.not_valid_before_utc >= datetime.timedelta(days=3650)


def test_the_server_certificate_is_what_browsers_accept(tmp_path):
    files = authority.server_files(names.for_hosts(["192.168.1.20"]), tmp_path)
    ca, served = load(tmp_path / "ca.pem"), load(files.certfile)
    assert (
        extension(served, x509.AuthorityKeyIdentifier).value.key_identifier
        == extension(ca, x509.SubjectKeyIdentifier).value.digest
    )
    assert extension(served, x509.SubjectKeyIdentifier).value.digest
    alternative = extension(served, x509.SubjectAlternativeName).value
    assert set(alternative.get_values_for_type(x509.DNSName)) == {"localhost"}
    ips = {str(ip) for ip in alternative.get_values_for_type(x509.IPAddress)}
    assert ips == {"127.0.0.1", "::1", "192.168.1.20"}
    assert list(extension(served, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not extension(served, x509.BasicConstraints).value.ca
    validity = served.not_valid_after_utc - served.not_valid_before_utc
    assert validity <= datetime.timedelta(days=397)
    served.verify_directly_issued_by(ca)


def test_a_strict_client_completes_the_handshake(tmp_path):
    files = authority.server_files(DEFAULT, tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(files.certfile, files.keyfile)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        accepted: list[str] = []

        def serve() -> None:
            connection, _ = listener.accept()
            with server_context.wrap_socket(connection, server_side=True) as tls:
                accepted.append(tls.version() or "")
                tls.recv(1)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        client = strict_context(tmp_path / "ca.pem")
        with (
            socket.create_connection(listener.getsockname(), timeout=10) as plain,
            client.wrap_socket(plain, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"x")
        thread.join(10)
    assert accepted and accepted[0].startswith("TLSv1.")


def test_keys_are_the_users_alone_and_the_directory_too(tmp_path):
    old = os.umask(0)  # no help from the umask: the modes are set at creation
    try:
        files = authority.server_files(DEFAULT, tmp_path / "ca")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    for key in (tmp_path / "ca" / "ca-key.pem", files.keyfile):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not list((tmp_path / "ca").glob(".*.tmp"))


def test_a_key_is_never_readable_by_others_even_before_its_rename(tmp_path, monkeypatch):
    seen: list[int] = []
    replace = os.replace

    def watching_replace(source, target):
        seen.append(stat.S_IMODE(os.stat(source).st_mode))
        assert not Path(target).exists(), "the key's final name appeared before its content"
        replace(source, target)

    monkeypatch.setattr(os, "replace", watching_replace)
    old = os.umask(0)
    try:
        location.write(tmp_path / "key.pem", b"secret", location.PRIVATE)
    finally:
        os.umask(old)
    assert seen == [0o600]
    assert (tmp_path / "key.pem").read_bytes() == b"secret"


def test_reused_then_renewed_near_its_end_or_for_other_names(tmp_path):
    first = authority.server_files(DEFAULT, tmp_path)
    assert (first.created_authority, first.issued) == (True, True)
    again = authority.server_files(DEFAULT, tmp_path)
    assert (again.created_authority, again.issued) == (False, False)
    assert again.certfile == first.certfile
    made, _ = authority.ensure(tmp_path)
    short, key = authority.issue(made, DEFAULT, days=10)
    location.write(first.keyfile, authority.private_pem(key), location.PRIVATE)
    location.write(first.certfile, short.public_bytes(Encoding.PEM), location.PUBLIC)
    renewed = authority.server_files(DEFAULT, tmp_path)
    assert renewed.issued and not renewed.created_authority
    assert load(renewed.certfile).not_valid_after_utc > short.not_valid_after_utc
    other = authority.server_files(names.for_hosts(["10.0.0.5"]), tmp_path)
    assert other.issued and other.certfile != first.certfile


def test_a_new_authority_means_new_server_certificates(tmp_path):
    first = authority.server_files(DEFAULT, tmp_path)
    (tmp_path / "ca-key.pem").unlink()
    second = authority.server_files(DEFAULT, tmp_path)
    assert second.created_authority and second.issued
    load(second.certfile).verify_directly_issued_by(load(tmp_path / "ca.pem"))
    assert first.certfile == second.certfile


# -- where it lives -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("platform", "environ", "expected"),
    [
        ("linux", {}, "{home}/.local/share/django-asgiserve"),
        ("linux", {"XDG_DATA_HOME": "/xdg"}, "/xdg/django-asgiserve"),
        ("linux", {"XDG_DATA_HOME": "relative"}, "{home}/.local/share/django-asgiserve"),
        ("darwin", {}, "{home}/Library/Application Support/django-asgiserve"),
        ("win32", {"LOCALAPPDATA": "/appdata"}, "/appdata/django-asgiserve"),
        ("linux", {"ASGISERVE_CA_DIR": "/chosen"}, "/chosen"),
    ],
)
def test_where_it_lives(platform, environ, expected, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("XDG_DATA_HOME", "LOCALAPPDATA", "ASGISERVE_CA_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert location.authority_dir() == Path(expected.format(home=tmp_path))


# -- the names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hosts", "dns", "ips"),
    [
        ([], ("localhost",), ("127.0.0.1", "::1")),
        (["127.0.0.1"], ("localhost",), ("127.0.0.1", "::1")),
        (["0"], ("devbox", "localhost"), ("127.0.0.1", "::1")),
        (["::"], ("devbox", "localhost"), ("127.0.0.1", "::1")),
        (["192.168.1.20"], ("localhost",), ("127.0.0.1", "192.168.1.20", "::1")),
        (["::ffff:10.0.0.1"], ("localhost",), ("10.0.0.1", "127.0.0.1", "::1")),
        (["App.Example.test."], ("app.example.test", "localhost"), ("127.0.0.1", "::1")),
        (["my_host"], ("localhost",), ("127.0.0.1", "::1")),
    ],
)
def test_the_names_a_certificate_covers(hosts, dns, ips):
    assert names.for_hosts(hosts, hostname="DevBox") == names.CertificateNames(dns, ips)


def test_a_hostname_no_certificate_can_carry_is_left_out():
    assert names.for_hosts(["0.0.0.0"], hostname="dev_box").dns == ("localhost",)


# -- trusting, as planned for each platform --------------------------------------------------


def anchor(tmp_path: Path) -> trust.Anchor:
    made, _ = authority.ensure(tmp_path)
    return inventory.anchor(tmp_path, made)


def test_macos_plans_the_login_keychain_and_the_system_one_when_asked(tmp_path):
    found = anchor(tmp_path)
    plan = trust.trust_plan(found, system=True, platform="darwin", home=Path("/Users/me"))
    assert plan.untested
    assert [step.argv for step in plan.steps] == [
        (
            *("security", "add-trusted-cert", "-r", "trustRoot", "-k"),
            *("/Users/me/Library/Keychains/login.keychain-db", str(found.path)),
        ),
        (
            *("sudo", "security", "add-trusted-cert", "-d", "-r", "trustRoot", "-k"),
            *("/Library/Keychains/System.keychain", str(found.path)),
        ),
    ]
    removal = trust.untrust_plan(found, system=False, platform="darwin", home=Path("/Users/me"))
    assert removal.steps[-1].argv[:4] == ("security", "delete-certificate", "-Z", found.sha1)


def test_windows_plans_the_users_root_store(tmp_path):
    found = anchor(tmp_path)
    plan = trust.trust_plan(found, system=False, platform="win32")
    assert plan.untested
    assert [step.argv for step in plan.steps] == [
        ("certutil", "-addstore", "-user", "Root", str(found.path))
    ]
    removal = trust.untrust_plan(found, system=False, platform="win32")
    assert [step.argv for step in removal.steps] == [
        ("certutil", "-delstore", "-user", "Root", found.serial)
    ]


def test_nss_nicknames_have_no_colon(tmp_path):
    # NSS reads "a:b" as the certificate b of token a.
    assert ":" not in anchor(tmp_path).nickname
