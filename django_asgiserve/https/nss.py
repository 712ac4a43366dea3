"""The NSS certificate databases browsers read on Linux, and NSS's ``certutil`` to change them.

Chromium and Chrome read ``~/.pki/nssdb`` (snap's Chromium its own copy under ``~/snap``);
Firefox reads the ``cert9.db`` of each of its profiles (also under ``~/snap`` and flatpak's
``~/.var``). ``certutil`` comes with NSS's tools (Debian and Ubuntu: ``libnss3-tools``; Fedora:
``nss-tools``; Arch: ``nss``).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CERTUTIL = "certutil"
#: Trusted to identify TLS servers ("C": a trusted authority for server certificates).
TRUST_FLAGS = "C,,"
PACKAGES = "Debian and Ubuntu: libnss3-tools; Fedora: nss-tools; Arch: nss"
#: Firefox profile folders, under the home directory.
FIREFOX_HOMES = (
    ".mozilla/firefox",
    "snap/firefox/common/.mozilla/firefox",
    ".var/app/org.mozilla.firefox/.mozilla/firefox",
)


@dataclass(frozen=True)
class Database:
    """One NSS database and whose it is (shown to the user)."""

    path: Path
    owner: str

    @property
    def exists(self) -> bool:
        return (self.path / "cert9.db").is_file()

    @property
    def spec(self) -> str:
        return f"sql:{self.path}"


def certutil() -> str | None:
    """The path of NSS's ``certutil``, or None when it is not installed."""
    return shutil.which(CERTUTIL)


def chromium_database(home: Path) -> Database:
    """Chromium's and Chrome's database (it may not exist yet: they make it on first start)."""
    return Database(home / ".pki" / "nssdb", "Chromium and Chrome")


def databases(home: Path) -> list[Database]:
    """Every browser database that exists under ``home``, Chromium's first."""
    found = [
        chromium_database(home),
        Database(home / "snap/chromium/current/.pki/nssdb", "Chromium (snap)"),
    ]
    for folder in FIREFOX_HOMES:
        profiles = home / folder
        if profiles.is_dir():
            found += [
                Database(profile, f"Firefox profile {profile.name}")
                for profile in sorted(profiles.iterdir())
                if (profile / "cert9.db").is_file()
            ]
    return [database for database in found if database.exists]


def nicknames(database: Database, prefix: str) -> list[str]:
    """The nicknames in ``database`` that start with ``prefix`` (``certutil -L``)."""
    program = certutil()
    if program is None or not database.exists:
        return []
    listing = subprocess.run(
        [program, "-L", "-d", database.spec],
        capture_output=True,
        text=True,
        check=False,
    )
    found = []
    for line in listing.stdout.splitlines():
        # "<nickname>    <trust flags>": the flags are the last column.
        name = line.rstrip().rpartition(" ")[0].strip()
        if name.startswith(prefix) and name not in found:
            found.append(name)
    return found
