"""What trusting the local authority (and removing it) runs on the user's machine: a plan of
commands, each shown to the user before it runs (``manage.py asgiserve_ca``).

Linux: the NSS databases Chromium and Firefox read, with NSS's ``certutil`` (see :mod:`nss`);
the system's store (``update-ca-certificates`` or ``update-ca-trust``, through ``sudo`` when not
root) only when asked for. macOS: the login keychain (``security add-trusted-cert``), the system
keychain when asked for. Windows: the user's root store (``certutil -addstore -user Root``), the
machine's when asked for. The macOS and Windows commands are the ones Apple and Microsoft
document; they are not tested here.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from django_asgiserve.https import nss

#: The system store's file for the authority (Debian's tool wants ``.crt``).
SYSTEM_NAME = "django-asgiserve-local-ca"
DEBIAN_ANCHORS = Path("/usr/local/share/ca-certificates")
#: Fedora and RHEL, then Arch.
TRUST_ANCHORS = (
    Path("/etc/pki/ca-trust/source/anchors"),
    Path("/etc/ca-certificates/trust-source/anchors"),
)
MAC_SYSTEM_KEYCHAIN = "/Library/Keychains/System.keychain"
UNTESTED = {"darwin", "win32"}


@dataclass(frozen=True)
class Anchor:
    """The authority's certificate as the stores know it."""

    path: Path
    #: Its name in NSS databases: the authority's name and the start of its fingerprint, so
    #: that an authority made later (after this one was deleted) is told apart.
    nickname: str
    #: The prefix of every nickname this project gives, to remove authorities made earlier too.
    family: str
    sha1: str
    serial: str

    @property
    def known(self) -> bool:
        """Whether the authority itself is at hand (not only the family's name)."""
        return bool(self.sha1)


def orphan(directory: Path, family: str) -> Anchor:
    """For untrust when the authority's files are gone: only what its family is called."""
    return Anchor(directory / "ca.pem", nickname="", family=family, sha1="", serial="")


@dataclass(frozen=True)
class Step:
    """One command, and the store it changes (said to the user before it runs)."""

    store: str
    argv: tuple[str, ...]
    #: A directory to make (mode 0700) before the command runs.
    makes: Path | None = None


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    #: What cannot be done here, and why (a tool that is not installed).
    missing: list[str] = field(default_factory=list)
    untested: bool = False


def trust_plan(
    anchor: Anchor, *, system: bool, platform: str = sys.platform, home: Path | None = None
) -> Plan:
    """The commands that trust ``anchor`` for the user (and the system's store, with
    ``system``)."""
    home = home or Path.home()
    if platform == "darwin":
        keychain = str(home / "Library/Keychains/login.keychain-db")
        add = ("security", "add-trusted-cert", "-r", "trustRoot", "-k")
        steps = [Step("the login keychain", (*add, keychain, str(anchor.path)))]
        if system:
            steps.append(
                Step(
                    "the system keychain",
                    ("sudo", *add[:2], "-d", *add[2:], MAC_SYSTEM_KEYCHAIN, str(anchor.path)),
                )
            )
        return Plan(steps, untested=True)
    if platform == "win32":
        steps = [
            Step("your root store", ("certutil", "-addstore", "-user", "Root", str(anchor.path)))
        ]
        if system:
            steps.append(
                Step(
                    "the machine's root store", ("certutil", "-addstore", "Root", str(anchor.path))
                )
            )
        return Plan(steps, untested=True)
    plan = Plan()
    program = nss.certutil()
    if program is None:
        plan.missing.append(
            "certutil is not installed: Chromium and Firefox keep their own certificate "
            f"databases, which need NSS's certutil to change ({nss.PACKAGES})."
        )
    else:
        chromium = nss.chromium_database(home)
        if not chromium.exists:
            new = (program, "-N", "--empty-password", "-d", chromium.spec)
            plan.steps.append(Step(f"a new database for {chromium.owner}", new, chromium.path))
        for database in [chromium, *(d for d in nss.databases(home) if d != chromium)]:
            into = (program, "-A", "-d", database.spec, "-t", nss.TRUST_FLAGS)
            named = ("-n", anchor.nickname, "-i", str(anchor.path))
            plan.steps.append(Step(database.owner, (*into, *named)))
    if system:
        plan.steps += linux_system_steps(anchor, plan, remove=False)
    return plan


def untrust_plan(
    anchor: Anchor, *, system: bool, platform: str = sys.platform, home: Path | None = None
) -> Plan:
    """The commands that remove the authority (and those made before it) where trust put it."""
    home = home or Path.home()
    if platform in UNTESTED and not anchor.known:
        return Plan(
            missing=[
                f"The authority's files are gone from {anchor.path.parent}: remove the "
                f"certificates named {anchor.family!r} with the system's certificate manager."
            ]
        )
    if platform == "darwin":
        keychain = str(home / "Library/Keychains/login.keychain-db")
        steps = [
            Step(
                "the login keychain's trust settings",
                ("security", "remove-trusted-cert", str(anchor.path)),
            ),
            Step(
                "the login keychain",
                ("security", "delete-certificate", "-Z", anchor.sha1, keychain),
            ),
        ]
        if system:
            steps += [
                Step(
                    "the system keychain's trust settings",
                    ("sudo", "security", "remove-trusted-cert", "-d", str(anchor.path)),
                ),
                Step(
                    "the system keychain",
                    (
                        "sudo",
                        "security",
                        "delete-certificate",
                        "-Z",
                        anchor.sha1,
                        MAC_SYSTEM_KEYCHAIN,
                    ),
                ),
            ]
        return Plan(steps, untested=True)
    if platform == "win32":
        steps = [Step("your root store", ("certutil", "-delstore", "-user", "Root", anchor.serial))]
        if system:
            steps.append(
                Step("the machine's root store", ("certutil", "-delstore", "Root", anchor.serial))
            )
        return Plan(steps, untested=True)
    plan = Plan()
    program = nss.certutil()
    if program is None:
        plan.missing.append(
            f"certutil is not installed, so browser databases cannot be read ({nss.PACKAGES})."
        )
    else:
        for database in nss.databases(home):
            for nickname in nss.nicknames(database, anchor.family):
                remove = (program, "-D", "-d", database.spec, "-n", nickname)
                plan.steps.append(Step(database.owner, remove))
    if system:
        plan.steps += linux_system_steps(anchor, plan, remove=True)
    return plan


def linux_system_steps(anchor: Anchor, plan: Plan, *, remove: bool) -> list[Step]:
    """Copy the authority into (or remove it from) the system's store and rebuild the store,
    through ``sudo`` when not root; notes in ``plan`` what is missing."""
    update: tuple[str, ...]
    if shutil.which("update-ca-certificates"):
        target, update = DEBIAN_ANCHORS / f"{SYSTEM_NAME}.crt", ("update-ca-certificates",)
    elif shutil.which("update-ca-trust"):
        anchors = next((d for d in TRUST_ANCHORS if d.is_dir()), TRUST_ANCHORS[0])
        target, update = anchors / f"{SYSTEM_NAME}.pem", ("update-ca-trust", "extract")
    else:
        plan.missing.append(
            "Neither update-ca-certificates nor update-ca-trust is installed: the system's "
            "store is left as it is."
        )
        return []
    sudo: tuple[str, ...] = () if is_root() else ("sudo",)
    change = (
        ("rm", "-f", str(target))
        if remove
        else ("install", "-m", "0644", str(anchor.path), str(target))
    )
    return [
        Step("the system's store", (*sudo, *change)),
        Step("the system's store", (*sudo, *update)),
    ]


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
