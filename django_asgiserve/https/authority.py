"""The local certificate authority and the server certificates it issues (with ``cryptography``).

Made on first use in the directory :mod:`location` chooses, then reused: ``ca.pem`` (the
authority's certificate, the file a browser or a client is told to trust) and ``ca-key.pem``;
for each set of names a server needs, ``server-<digest>.pem`` and ``server-<digest>-key.pem``.
What they contain is what browsers and Python 3.13's default (strict) verification both require:
the authority's basicConstraints critical (CA, path length 0), its keyUsage critical
(keyCertSign, cRLSign) and its subject key identifier; the server certificate's authority and
subject key identifiers, subject alternative names, serverAuth and a validity browsers accept.
A server certificate is issued again when it nears its end, names other hosts, or was issued by
another authority. Keys are ECDSA P-256 (quick to make, accepted everywhere TLS 1.2 is).
"""

from __future__ import annotations

import datetime
import getpass
import hashlib
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from django_asgiserve.https import location
from django_asgiserve.https.names import CertificateNames

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
CA_NAME = "django-asgiserve local CA"
#: Ten years: the authority is trusted once and should not need trusting again soon.
CA_DAYS = 3650
#: Browsers refuse server certificates valid for more than 398 days.
SERVER_DAYS = 365
#: A certificate this close to its end is replaced at the next start.
RENEW_WITHIN = datetime.timedelta(days=30)
#: Issued this far in the past, so that a clock a little behind still accepts it.
BACKDATE = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class Authority:
    """The authority's certificate and private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def key_identifier(self) -> x509.SubjectKeyIdentifier:
        return self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value


@dataclass(frozen=True)
class ServerFiles:
    """The certificate and key a server is started with, and what it took to have them."""

    certfile: Path
    keyfile: Path
    #: Whether the authority was made just now (then no browser trusts it yet).
    created_authority: bool
    #: Whether the server certificate was issued just now (first use, renewal, other names).
    issued: bool


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def server_files(names: CertificateNames, directory: Path | None = None) -> ServerFiles:
    """A server certificate for ``names`` and its key, from the authority in ``directory``
    (:func:`location.authority_dir` by default), made or renewed as needed."""
    directory = location.prepare(directory or location.authority_dir())
    with location.locked(directory):
        authority, created = load_or_create(directory)
        digest = hashlib.sha256("\n".join(names.all).encode()).hexdigest()[:12]
        certfile = directory / f"server-{digest}.pem"
        keyfile = directory / f"server-{digest}-key.pem"
        issued = not is_current(certfile, keyfile, authority, names)
        if issued:
            certificate, key = issue(authority, names)
            location.write(keyfile, private_pem(key), location.PRIVATE)
            pem = certificate.public_bytes(serialization.Encoding.PEM)
            location.write(certfile, pem, location.PUBLIC)
    return ServerFiles(certfile, keyfile, created, issued)


def ensure(directory: Path) -> tuple[Authority, bool]:
    """The authority in ``directory``, made now if there is none; and whether it was."""
    with location.locked(location.prepare(directory)):
        return load_or_create(directory)


def load_or_create(directory: Path) -> tuple[Authority, bool]:
    """The authority in ``directory`` (whose lock the caller holds), made when there is none
    or it is unusable (broken, or at its end); and whether it was made now."""
    authority = load(directory)
    if authority is not None:
        return authority, False
    authority = create()
    location.write(directory / CA_KEY_FILE, private_pem(authority.key), location.PRIVATE)
    location.write(
        directory / CA_FILE,
        authority.certificate.public_bytes(serialization.Encoding.PEM),
        location.PUBLIC,
    )
    return authority, True


def load(directory: Path) -> Authority | None:
    """The usable authority in ``directory``, or None."""
    try:
        certificate = x509.load_pem_x509_certificate((directory / CA_FILE).read_bytes())
        key = serialization.load_pem_private_key(
            (directory / CA_KEY_FILE).read_bytes(), password=None
        )
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not same_key(certificate, key):
        return None
    if certificate.not_valid_after_utc - RENEW_WITHIN < now():
        return None
    return Authority(certificate, key)


def create() -> Authority:
    """A new authority: a self-signed certificate that may sign server certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "django-asgiserve development CA"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, owner()),
        ]
    )
    identifier = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    start = now() - BACKDATE
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(cert_sign=True), critical=True)
        .add_extension(identifier, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(identifier),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return Authority(certificate, key)


def issue(
    authority: Authority, names: CertificateNames, days: float = SERVER_DAYS
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A server certificate for ``names``, valid ``days`` (never past the authority's end)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = now() - BACKDATE
    end = min(start + datetime.timedelta(days=days), authority.certificate.not_valid_after_utc)
    alternative_names: list[x509.GeneralName] = [x509.DNSName(n) for n in names.dns]
    alternative_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in names.ips]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(
                        NameOID.ORGANIZATION_NAME, "django-asgiserve development certificate"
                    ),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, owner()),
                ]
            )
        )
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                authority.key_identifier
            ),
            critical=False,
        )
        .sign(authority.key, hashes.SHA256())
    )
    return certificate, key


def is_current(
    certfile: Path, keyfile: Path, authority: Authority, names: CertificateNames
) -> bool:
    """Whether the server certificate in ``certfile`` can be served again as it is: its key,
    issued by ``authority`` for exactly ``names``, and not near its end."""
    try:
        certificate = x509.load_pem_x509_certificate(certfile.read_bytes())
        key = serialization.load_pem_private_key(keyfile.read_bytes(), password=None)
        certificate.verify_directly_issued_by(authority.certificate)
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    covered = CertificateNames(
        tuple(sorted(alternative.value.get_values_for_type(x509.DNSName))),
        tuple(str(ip) for ip in alternative.value.get_values_for_type(x509.IPAddress)),
    )
    return (
        same_key(certificate, key)
        and set(covered.dns) == set(names.dns)
        and set(covered.ips) == set(names.ips)
        and certificate.not_valid_before_utc <= now()
        and certificate.not_valid_after_utc - RENEW_WITHIN > now()
    )


def key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    """An authority signs certificates (and revocation lists); a server signs handshakes."""
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def same_key(certificate: x509.Certificate, key: object) -> bool:
    """Whether ``key`` is the private key of ``certificate``."""
    public = getattr(key, "public_key", None)
    if public is None:
        return False
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(public().public_bytes(*der) == certificate.public_key().public_bytes(*der))


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def owner() -> str:
    """Whose authority this is, as shown in a browser's certificate viewer: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (some containers)
        user = "user"
    return f"{user}@{socket.gethostname()}"
