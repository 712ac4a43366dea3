"""Every option of ``asgiserve`` and every key of ``ASGISERVE``: an option and the setting for
it accept the same values and refuse the same ones in the same words (in process).

The cases come from the command's own parser and from the settings' defaults, so an option or a
key added later is covered (or this test says it must be placed): an option named like a key
(``--max-requests`` and ``MAX_REQUESTS``) is that key's, the others are listed below as having
no setting, and the keys without an option likewise. ``docs/reference.md`` documents each of
them (``test_reference_docs.py`` checks it).
"""

from __future__ import annotations

import argparse
import ast
import math

import pytest
from django.core.management.base import BaseCommand, CommandError

from django_asgiserve import settings as serve_settings
from django_asgiserve.management.commands.asgiserve import Command

#: Options that no setting gives: runserver's own, and what is decided per run.
COMMAND_ONLY = {
    "addrport",
    "use_ipv6",
    "use_threading",
    "use_reloader",
    "use_static_handler",
    "insecure_serving",
    "skip_checks",
    "workers",
    "pdb",
    "certfile",
    "keyfile",
    "http3",
}
#: Keys that no option sets.
SETTINGS_ONLY = {
    "OPTIONS",
    "RUNSERVER",
    "WATCH_PATHS",
    "WATCH_IGNORE",
    "LIFESPAN_SIGNALS",
    "TEST_BACKEND",
    "SYNC_FAST_PATH",
    "REQUEST_COST",
    "WARM_UP",
}
#: What users type: numbers of every kind, paths, addresses, names, lists, nonsense.
TEXTS = [
    "0",
    "1",
    "2",
    "-1",
    "2.5",
    "-0.5",
    "1e3",
    "1000.0",
    "inf",
    "nan",
    "lots",
    "",
    "/",
    "/healthz",
    "healthz",
    "9100",
    "0:9100",
    "127.0.0.1:9100",
    "[::1]:9100",
    ":9100",
    "127.0.0.1:99999",
    "*",
    "10.0.0.0/8",
    "10.0.0.300",
    "127.0.0.1, ::1",
    "auto",
    "uvicorn",
    "gunicorn",
    "tornado",
]


def command_parser() -> argparse.ArgumentParser:
    return Command().create_parser("manage.py", "asgiserve")


def own_actions() -> list[argparse.Action]:
    """The command's options, without those every Django command has."""
    common = {action.dest for action in BaseCommand().create_parser("manage.py", "x")._actions}
    return [action for action in command_parser()._actions if action.dest not in common]


def setting_of(action: argparse.Action) -> str | None:
    key = action.dest.upper()
    return key if key in serve_settings.DEFAULTS else None


def as_setting(key: str, text: str) -> object:
    """What a user would write in ``ASGISERVE[key]`` for the option's ``text``."""
    default = serve_settings.DEFAULTS[key]
    if isinstance(default, list):
        return [item.strip() for item in text.split(",") if item.strip()]
    if isinstance(default, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        try:
            return float(text) if text.lower() in ("inf", "nan") else text
        except ValueError:
            return text
    return value if isinstance(value, int | float) else text


def command_outcome(action: argparse.Action, text: str) -> tuple[bool, object]:
    """(accepted, the value) or (refused, the message without the option's name)."""
    flag = action.option_strings[-1]
    try:
        options = command_parser().parse_args([f"{flag}={text}"])
    except CommandError as error:
        message = str(error)
        prefix = f"Error: argument {'/'.join(action.option_strings)}: "
        assert message.startswith(prefix), message
        return False, message.removeprefix(prefix)
    return True, getattr(options, action.dest)


def settings_outcome(settings, key: str, value: object) -> tuple[bool, object]:
    settings.ASGISERVE = {key: value}
    prefix = f"ASGISERVE[{key!r}] "
    messages = [p.msg for p in serve_settings.problems() if p.msg.startswith(prefix)]
    if messages:
        return False, messages[0].removeprefix(prefix)
    return True, serve_settings.load().__dict__[key.lower()]


def same(one: object, other: object) -> bool:
    if isinstance(one, float) and isinstance(other, float) and math.isnan(one):
        return math.isnan(other)
    return one == other or (isinstance(one, list) and list(one) == list(other))  # type: ignore[call-overload]


def test_every_option_and_key_is_placed():
    actions = own_actions()
    unplaced = [a.dest for a in actions if setting_of(a) is None and a.dest not in COMMAND_ONLY]
    assert not unplaced, f"options neither named like a key nor listed in COMMAND_ONLY: {unplaced}"
    paired = {setting_of(a) for a in actions} - {None}
    keys = set(serve_settings.DEFAULTS) - paired
    assert keys == SETTINGS_ONLY, "keys without an option that SETTINGS_ONLY does not list"


@pytest.mark.parametrize(
    "action", [a for a in own_actions() if setting_of(a)], ids=lambda a: a.option_strings[-1]
)
def test_an_option_takes_what_its_setting_takes(settings, action):
    key = setting_of(action)
    assert key is not None
    if isinstance(action, argparse.BooleanOptionalAction):
        assert key in serve_settings.FLAGS
        for flag, value in zip(action.option_strings, (True, False), strict=True):
            assert getattr(command_parser().parse_args([flag]), action.dest) is value
            assert settings_outcome(settings, key, value)[0]
        return
    disagreements = []
    for text in TEXTS:
        accepted, result = command_outcome(action, text)
        value = as_setting(key, text)
        also, setting_result = settings_outcome(settings, key, value)
        # The setting's view may hold a tuple or a float where the option holds a list or int.
        if accepted != also or (not accepted and result != setting_result):
            disagreements.append(f"{text!r}: option {result!r}, setting {setting_result!r}")
        elif accepted and not same(result, value):
            disagreements.append(f"{text!r}: option gives {result!r}, the setting {value!r}")
    assert not disagreements, "\n".join(disagreements)


@pytest.mark.parametrize(
    ("flag", "text"),
    [
        ("--max-requests", "0"),
        ("--max-requests-jitter", "0"),
        ("--max-worker-memory", "0"),
        ("--startup-timeout", "0"),
        ("--drain-delay", "0"),
        ("--loop-warn-ms", "0"),
        ("--graceful-timeout", "0"),
        ("--health-path", ""),
        ("--metrics", ""),
    ],
)
def test_the_documented_zero_or_empty_is_taken(flag, text):
    dest = flag.removeprefix("--").replace("-", "_")
    assert getattr(command_parser().parse_args([f"{flag}={text}"]), dest) == as_setting(
        dest.upper(), text
    )
