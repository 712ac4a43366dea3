"""What the authority's directory holds, as ``manage.py asgiserve_ca`` shows it and as the
certificate stores know the authority (its nickname, fingerprints and serial number)."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from django_asgiserve.https.authority import CA_FILE, CA_NAME, Authority
from django_asgiserve.https.trust import Anchor


def anchor(directory: Path, authority: Authority) -> Anchor:
    """``authority`` (kept in ``directory``) as the certificate stores know it."""
    certificate = authority.certificate
    return Anchor(
        path=directory / CA_FILE,
        # No colon: NSS reads "a:b" as token a's certificate b.
        nickname=f"{CA_NAME} {fingerprint(certificate).replace(':', '')[:8]}",
        family=CA_NAME,
        sha1=certificate.fingerprint(hashes.SHA1()).hex().upper(),
        serial=f"{certificate.serial_number:x}",
    )


def fingerprint(certificate: x509.Certificate) -> str:
    """The certificate's SHA-256 fingerprint, as browsers show it (hex pairs and colons)."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def issued_files(directory: Path) -> list[tuple[Path, tuple[str, ...], datetime.datetime]]:
    """The server certificates in ``directory``: each file, the names it covers, its end."""
    found = []
    for path in sorted(directory.glob("server-*.pem")):
        if path.name.endswith("-key.pem"):
            continue
        try:
            certificate = x509.load_pem_x509_certificate(path.read_bytes())
            alternative = certificate.extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            ).value
        except (OSError, ValueError, x509.ExtensionNotFound):
            continue
        covered = [
            *alternative.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in alternative.get_values_for_type(x509.IPAddress)),
        ]
        found.append((path, tuple(covered), certificate.not_valid_after_utc))
    return found
