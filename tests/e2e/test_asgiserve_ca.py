"""``manage.py asgiserve_ca``: trusting the local authority in the NSS databases Chromium and
Firefox read (with the real ``certutil``, in a home directory of the test's own), removing it,
showing it; ``--dry-run`` runs nothing; without ``certutil``, one clear error naming the package.
The system's store is only ever planned here (``--dry-run``): the tests never change it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from django_asgiserve.https import authority, nss
from tests.helpers.commands import assert_fails_clearly, manage
from tests.helpers.local_ca import LocalCA

pytestmark = pytest.mark.skipif(
    shutil.which("certutil") is None, reason="NSS's certutil is missing (Debian: libnss3-tools)"
)


def listed(database: Path) -> list[str]:
    """The nicknames in an NSS database, as certutil lists them."""
    out = subprocess.run(
        ["certutil", "-L", "-d", f"sql:{database}"], capture_output=True, text=True, check=True
    ).stdout
    return [line.rpartition(" ")[0].strip() for line in out.splitlines()[4:] if line.strip()]


def firefox_profile(home: Path) -> Path:
    profile = home / ".mozilla" / "firefox" / "abcd1234.default-release"
    profile.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "--empty-password", "-d", f"sql:{profile}"], check=True)
    return profile


def ca_command(project: Path, local_ca: LocalCA, *args: str, env: dict[str, str] | None = None):
    return manage(project, "asgiserve_ca", *args, env=env or local_ca.env)


def test_trust_adds_it_to_chromium_and_firefox_and_untrust_removes_it(project, local_ca):
    profile = firefox_profile(local_ca.home)
    chromium = local_ca.home / ".pki" / "nssdb"
    result = ca_command(project, local_ca, "trust")
    assert result.code == 0, result.output
    # Made first, since none existed; Chromium's database made too (it had never run).
    assert f"Made a local certificate authority in {local_ca.directory}." in result.stdout
    assert f"certutil -N --empty-password -d sql:{chromium}" in result.stdout
    assert f"certutil -A -d sql:{profile} -t C,, -n" in result.stdout
    ours = [name for name in listed(chromium) if name.startswith(authority.CA_NAME)]
    assert len(ours) == 1
    assert listed(profile) == ours
    shown = ca_command(project, local_ca, "show")
    assert f"Local certificate authority: {local_ca.ca_file}" in shown.stdout
    assert f"Chromium and Chrome ({chromium})" in shown.stdout
    assert f"Firefox profile {profile.name} ({profile})" in shown.stdout
    removed = ca_command(project, local_ca, "untrust")
    assert removed.code == 0, removed.output
    assert listed(chromium) == [] and listed(profile) == []
    assert "Not trusted in any browser database" in ca_command(project, local_ca, "show").stdout
    assert (
        "is in none of your browsers' databases" in ca_command(project, local_ca, "untrust").stdout
    )


def test_untrust_removes_an_authority_whose_files_are_gone(project, local_ca):
    assert ca_command(project, local_ca, "trust").code == 0
    shutil.rmtree(local_ca.directory)
    result = ca_command(project, local_ca, "untrust")
    assert result.code == 0, result.output
    assert listed(local_ca.home / ".pki" / "nssdb") == []


def test_dry_run_says_and_runs_nothing(project, local_ca):
    result = ca_command(project, local_ca, "trust", "--system", "--dry-run")
    assert result.code == 0, result.output
    assert "certutil -A -d sql:" in result.stdout
    # The system's store: the Debian tool here, through sudo unless root.
    assert "update-ca-certificates" in result.stdout or "update-ca-trust" in result.stdout
    assert "Nothing was run (--dry-run)." in result.stdout
    assert not (local_ca.home / ".pki").exists()


def test_show_before_anything_is_made(project, local_ca):
    result = ca_command(project, local_ca, "show")
    assert result.code == 0
    assert "There is no local certificate authority in" in result.stdout
    assert not local_ca.directory.exists()


def test_without_certutil_the_package_is_named(project, local_ca, tmp_path):
    # PATH without NSS's tools, but with the interpreter.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    result = ca_command(project, local_ca, "trust", env={**local_ca.env, "PATH": str(bin_dir)})
    assert_fails_clearly(result, "certutil is not installed", "libnss3-tools", "Nothing was")
    assert nss.chromium_database(local_ca.home).exists is False


def test_without_cryptography_the_extra_is_named(project, local_ca):
    result = manage(project, "asgiserve_ca", "trust", hide=("cryptography",), env=local_ca.env)
    assert_fails_clearly(
        result,
        "CommandError: manage.py asgiserve_ca needs the cryptography package",
        'pip install "django-asgiserve[https]"',
    )


def test_an_unknown_action_is_a_usage_error(project, local_ca):
    result = ca_command(project, local_ca, "forget")
    assert result.code == 2
    assert "invalid choice: 'forget'" in result.stderr
