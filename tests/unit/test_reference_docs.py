"""docs/reference.md against the code: every option of the ``asgiserve`` command's real parser,
every ``ASGISERVE`` key and every system check id is documented there, each with its values and
its default; and everything documented there still exists (in process)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.management.base import BaseCommand

import django_asgiserve
from django_asgiserve import settings as serve_settings
from django_asgiserve.management.commands import asgiserve_ca
from django_asgiserve.management.commands.asgiserve import Command
from django_asgiserve.testing import pytest_plugin
from tests.helpers.server import REPO

REFERENCE = REPO / "docs" / "reference.md"
PACKAGE = Path(django_asgiserve.__file__).parent
COMMAND = "manage.py asgiserve"
CA_COMMAND = "manage.py asgiserve_ca"
#: ":::{option} -6, --ipv6" ... ":::" (MyST colon fences; see docs/conf.py).
BLOCK = re.compile(r"^:::\{(program|option|setting)\}[ \t]*([^\n]*)\n(.*?)^:::$", re.M | re.S)
CHECK_ID = re.compile(r"asgiserve\.[EWI]\d{3}")


def blocks() -> list[tuple[str, str, str]]:
    """(kind, signature, body) of each directive block on the page, in order."""
    return [
        (kind, signature.strip(), body)
        for kind, signature, body in BLOCK.findall(REFERENCE.read_text())
    ]


def documented_options() -> dict[str, dict[str, str]]:
    """For each program, its documented option names (as Sphinx splits a signature) and the
    block's body."""
    found: dict[str, dict[str, str]] = {}
    program = ""
    for kind, signature, body in blocks():
        if kind == "program":
            program = signature
        elif kind == "option":
            for part in signature.split(", "):
                found.setdefault(program, {})[part.split()[0]] = body
    return found


def documented_settings() -> dict[str, str]:
    return {signature: body for kind, signature, body in blocks() if kind == "setting"}


def parser_options(command: BaseCommand, name: str) -> set[str]:
    """Every option string of the command's parser, and the names of its positionals."""
    parser = command.create_parser("manage.py", name)
    names: set[str] = set()
    for action in parser._actions:
        names.update(action.option_strings or [action.dest])
    return names - {"-h", "--help"}


def test_the_page_documents_every_option_of_the_command():
    own = parser_options(Command(), "asgiserve") - parser_options(BaseCommand(), "base")
    missing = own - set(documented_options().get(COMMAND, {}))
    assert not missing, f"options of manage.py asgiserve missing from {REFERENCE.name}: {missing}"


def test_every_option_the_page_documents_exists():
    documented = documented_options()
    stale = set(documented.get(COMMAND, {})) - parser_options(Command(), "asgiserve")
    assert not stale, f"{REFERENCE.name} documents options asgiserve no longer has: {stale}"
    assert set(documented) == {COMMAND, CA_COMMAND, "pytest"}, "an option of an unknown program"


def test_the_page_documents_the_ca_command_exactly():
    own = parser_options(asgiserve_ca.Command(), "asgiserve_ca") - parser_options(
        BaseCommand(), "base"
    )
    assert set(documented_options().get(CA_COMMAND, {})) == own


def test_the_pytest_option_is_documented_and_exists(pytestconfig: pytest.Config):
    flag = "--" + pytest_plugin.BACKEND_OPTION.replace("_", "-")
    documented = documented_options().get("pytest", {})
    assert set(documented) == {flag}
    pytestconfig.getoption(flag)  # ValueError if the plugin no longer adds it


def test_the_page_documents_every_setting_and_no_other():
    documented = set(documented_settings())
    assert documented == set(serve_settings.DEFAULTS), (
        f"missing: {set(serve_settings.DEFAULTS) - documented}; "
        f"stale: {documented - set(serve_settings.DEFAULTS)}"
    )


def test_each_option_and_setting_says_its_values_and_default():
    bodies = [
        (name, body) for options in documented_options().values() for name, body in options.items()
    ]
    bodies += documented_settings().items()
    vague = [
        name for name, body in bodies if "**Values:**" not in body or "**Default:**" not in body
    ]
    assert not vague, f"blocks without **Values:** and **Default:**: {vague}"


def test_the_page_documents_every_system_check_and_no_other():
    in_code = {
        match
        for path in PACKAGE.rglob("*.py")
        for match in CHECK_ID.findall(path.read_text(encoding="utf-8"))
    }
    on_page = set(CHECK_ID.findall(REFERENCE.read_text()))
    assert in_code == on_page, f"missing: {in_code - on_page}; stale: {on_page - in_code}"
