"""``manage.py asgiserve_ca show|trust|untrust``: the local certificate authority ``--https``
serves with; trusting it in the user's certificate stores, or removing it, only when asked."""

from __future__ import annotations

import shlex
import subprocess
from argparse import ArgumentParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand, CommandError

from django_asgiserve.https.serving import HTTPSError, require_cryptography

if TYPE_CHECKING:
    from django_asgiserve.https.trust import Step


class Command(BaseCommand):
    help = (
        "Shows the local certificate authority that asgiserve --https serves with, trusts it "
        "in your browsers' certificate stores, or removes it from them."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "action",
            choices=["show", "trust", "untrust"],
            help="show: where the authority is and where it is trusted; trust: add it to your "
            "browsers' stores (made first if there is none); untrust: remove it (and any made "
            "before it) from them.",
        )
        parser.add_argument(
            "--system",
            action="store_true",
            help="Also the system's store (through sudo when not root), which command-line "
            "tools read.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Say which commands trust or untrust would run, and run none.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            require_cryptography("manage.py asgiserve_ca")
        except HTTPSError as error:
            raise CommandError(str(error)) from None
        from django_asgiserve.https import location

        directory = location.authority_dir()
        try:
            if options["action"] == "show":
                self.show(directory)
            else:
                self.change(directory, options["action"], options["system"], options["dry_run"])
        except PermissionError as error:
            raise CommandError(f"{error.filename}: {error.strerror}.") from None

    def show(self, directory: Path) -> None:
        from django_asgiserve.https import authority, inventory, nss

        found = authority.load(directory)
        if found is None:
            self.stdout.write(
                f"There is no local certificate authority in {directory} yet: the first "
                "`manage.py asgiserve --https` makes it (or `manage.py asgiserve_ca trust`)."
            )
            return
        anchor = inventory.anchor(directory, found)
        end = found.certificate.not_valid_after_utc.date()
        self.stdout.write(f"Local certificate authority: {anchor.path} (valid until {end})")
        self.stdout.write(f"  {found.certificate.subject.rfc4514_string()}")
        self.stdout.write(f"  SHA-256 fingerprint: {inventory.fingerprint(found.certificate)}")
        for path, names, until in inventory.issued_files(directory):
            self.stdout.write(f"Server certificate {path.name}: {', '.join(names)}")
            self.stdout.write(f"  valid until {until.date()} (renewed 30 days before)")
        if nss.certutil() is None:
            return
        trusted = [
            d
            for d in nss.databases(Path.home())
            if anchor.nickname in nss.nicknames(d, anchor.nickname)
        ]
        if trusted:
            self.stdout.write("Trusted in:")
            for database in trusted:
                self.stdout.write(f"  {database.owner} ({database.path})")
        else:
            self.stdout.write(
                "Not trusted in any browser database: `manage.py asgiserve_ca trust` adds it."
            )

    def change(self, directory: Path, action: str, system: bool, dry_run: bool) -> None:
        from django_asgiserve.https import authority, inventory, trust

        if action == "trust":
            found, created = authority.ensure(directory)
            if created:
                self.stdout.write(f"Made a local certificate authority in {directory}.")
            plan = trust.trust_plan(inventory.anchor(directory, found), system=system)
        else:
            kept = authority.load(directory)
            anchor = (
                inventory.anchor(directory, kept)
                if kept is not None
                else trust.orphan(directory, authority.CA_NAME)
            )
            plan = trust.untrust_plan(anchor, system=system)
        for note in plan.missing:
            self.stderr.write(self.style.WARNING(note))
        if not plan.steps:
            if plan.missing:
                raise CommandError("Nothing was changed.")
            self.stdout.write("The authority is in none of your browsers' databases.")
            return
        if plan.untested:
            self.stdout.write(
                "These are the commands the platform documents; django-asgiserve has not been "
                "tested with them here."
            )
        for step in plan.steps:
            self.stdout.write(f"{step.store}: {shlex.join(step.argv)}")
            if not dry_run:
                run(step)
        if dry_run:
            self.stdout.write("Nothing was run (--dry-run).")
        elif action == "trust":
            self.stdout.write(
                "Done: browsers trust the local authority's certificates from their next "
                "start (`manage.py asgiserve_ca untrust` removes it)."
            )
        else:
            self.stdout.write("Done: the local authority is no longer trusted there.")


def run(step: Step) -> None:
    """Run one step's command, or CommandError with what it said."""
    if step.makes is not None:
        step.makes.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        done = subprocess.run(step.argv, capture_output=True, text=True, check=False)
    except OSError as error:
        raise CommandError(f"{step.argv[0]}: {error.strerror}.") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip()
        raise CommandError(
            f"{shlex.join(step.argv)} failed (exit status {done.returncode}): {said}"
        )
