"""Mistakes on the command line and in the settings: one clear message, exit code 1, no traceback.

Missing backends are simulated honestly, in the process that runs the command: a ``PathFinder``
that does not find them, so ``importlib.util.find_spec`` answers ``None`` and an import fails,
exactly as when the distribution is not installed.
"""

from __future__ import annotations

import json
import socket

import pytest

from django_asgiserve.backends import NAMES
from tests.helpers.commands import HIDE_AND_RUN, assert_fails_clearly, manage, run, write_settings
from tests.helpers.server import REPO

SERVERS = ("uvicorn", "daphne", "hypercorn", "gunicorn", "granian")


# -- the command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["abc:xyz"], 'CommandError: "abc:xyz" is not a valid port number or address:port pair.'),
        (["99999"], "CommandError: '99999' is not a valid port number."),
        (["127.0.0.1:70000"], "CommandError: '70000' is not a valid port number."),
        (["--ipv6", "127.0.0.1:0"], 'CommandError: "127.0.0.1" is not a valid IPv6 address.'),
    ],
)
def test_bad_addrport(project, args, message):
    assert_fails_clearly(manage(project, "asgiserve", "--noreload", *args), message)


def test_port_in_use(project):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = manage(project, "asgiserve", "--noreload", f"127.0.0.1:{port}")
    assert_fails_clearly(result, "Error: That port is already in use.")
    assert result.stderr.strip() == "Error: That port is already in use."


def test_unknown_backend_lists_the_valid_ones(project):
    result = manage(project, "asgiserve", "--noreload", "--backend", "nope", "127.0.0.1:0")
    assert_fails_clearly(
        result, "argument --backend: must be auto or one of ", ", not 'nope'.", code=2
    )
    for name in SERVERS:
        assert name in result.stderr


@pytest.mark.parametrize("value", ["-1", "inf", "nan", "soon"])
def test_bad_graceful_timeout(project, value):
    result = manage(project, "asgiserve", "--noreload", f"--graceful-timeout={value}")
    # argparse's own exit code for a bad option value, as for any Django command.
    assert_fails_clearly(
        result, "argument --graceful-timeout: must be a number of seconds (0 or more), not ", code=2
    )


def test_backend_not_installed(project):
    result = manage(
        project, "asgiserve", "--noreload", "--backend", "hypercorn", "127.0.0.1:0",
        hide=("hypercorn",),
    )  # fmt: skip
    assert_fails_clearly(
        result,
        "(asgiserve.E004) The hypercorn backend is not installed.",
        'pip install "django-asgiserve[hypercorn]"',
    )


def test_no_backend_installed_at_all(project):
    result = manage(
        project, "asgiserve", "--noreload", "--backend", "auto", "127.0.0.1:0", hide=SERVERS
    )
    assert_fails_clearly(
        result,
        "(asgiserve.E004) No ASGI server is installed for django-asgiserve.",
        'pip install "django-asgiserve[uvicorn]"',
    )


def test_the_core_imports_without_any_backend():
    code = HIDE_AND_RUN.split("sys.argv = ")[0] + (
        "import json, os\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'tests.settings'\n"
        "import django\n"
        "django.setup()\n"
        "import django_asgiserve.addrport, django_asgiserve.backends, django_asgiserve.checks\n"
        "import django_asgiserve.settings, django_asgiserve.run_config, django_asgiserve.startup\n"
        "import django_asgiserve.asgi.error_page, django_asgiserve.asgi.stack\n"
        "import django_asgiserve.asgi.static, django_asgiserve.sockets\n"
        "import django_asgiserve.backends.daphne, django_asgiserve.backends.hypercorn\n"
        "import django_asgiserve.backends.uvicorn, django_asgiserve.backends.gunicorn\n"
        "import django_asgiserve.backends.granian\n"
        "import django_asgiserve.management.commands.asgiserve\n"
        "import django_asgiserve.management.commands.runserver\n"
        "from django_asgiserve import backends, checks\n"
        "print(json.dumps({\n"
        "    'installed': [\n"
        "        n for n in backends.NAMES if backends.backend_class(n).is_installed()\n"
        "    ],\n"
        "    'checks': [m.id for m in checks.check_settings()],\n"
        "    'imported': sorted(m for m in sys.modules if m.partition('.')[0] in HIDDEN\n"
        "                       or m.partition('.')[0] == 'twisted'),\n"
        "}))\n"
    )
    result = run(REPO, ["-c", code, ",".join(SERVERS)])
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    # Not installed is a problem for serving only (tests/e2e/test_serving_checks.py).
    assert report == {"installed": [], "checks": [], "imported": []}


# -- the settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        pytest.param(
            'ASGI_APPLICATION = "testproject.missing.application"',
            ["ASGI_APPLICATION 'testproject.missing.application' cannot be loaded: "
             "there is no module 'testproject.missing'."],
            id="missing-module",
        ),
        pytest.param(
            'ASGI_APPLICATION = "nowhere.asgi.application"',
            ["there is no module 'nowhere'."],
            id="missing-package",
        ),
        pytest.param(
            'ASGI_APPLICATION = "testproject.asgi.app"',
            ["module 'testproject.asgi' has no attribute 'app'."],
            id="missing-attribute",
        ),
        pytest.param(
            'ASGI_APPLICATION = "testproject.settings.SECRET_KEY"',
            ["ASGI_APPLICATION 'testproject.settings.SECRET_KEY' is a str, not an ASGI "
             "application"],
            id="not-callable",
        ),
        pytest.param(
            'ASGI_APPLICATION = "application"',
            ["ASGI_APPLICATION must be a dotted path"],
            id="not-a-dotted-path",
        ),
    ],
)  # fmt: skip
@pytest.mark.parametrize("reload", [False, True], ids=["noreload", "reload"])
def test_bad_asgi_application(project, body, messages, reload):
    settings = write_settings(project, "settings_bad", body)
    args = ["--skip-checks", "--settings", settings, "127.0.0.1:0"]
    result = manage(project, "asgiserve", *args, *([] if reload else ["--noreload"]))
    assert_fails_clearly(result, *messages)


@pytest.mark.parametrize(
    ("body", "messages"),
    [
        pytest.param(
            'ASGISERVE = ["uvicorn"]', ["ASGISERVE must be a dict, not list.", "(asgiserve.E001)"],
            id="not-a-dict",
        ),
        pytest.param(
            'ASGISERVE = {"BACKEDN": "uvicorn"}',
            ["ASGISERVE has an unknown key 'BACKEDN'. (asgiserve.E002)",
             "HINT: Did you mean 'BACKEND'?"],
            id="typo",
        ),
        pytest.param(
            'ASGISERVE = {"BACKEND": "waitress"}',
            [f"ASGISERVE['BACKEND'] must be auto or one of {', '.join(NAMES)}, not 'waitress'. "
             "(asgiserve.E003)",
             f"HINT: Choose one of: auto, {', '.join(NAMES)}."],
            id="backend",
        ),
        pytest.param(
            'ASGISERVE = {"OPTIONS": {"uvicorn": ["h11"]}}',
            ["ASGISERVE['OPTIONS'] must map backend names to dicts of options. (asgiserve.E006)"],
            id="options-type",
        ),
        pytest.param(
            'ASGISERVE = {"OPTIONS": {"uvicorn": {"port": 9000}}}',
            ["ASGISERVE['OPTIONS']['uvicorn']: 'port' is set by asgiserve", "(asgiserve.E007)"],
            id="managed-option",
        ),
        pytest.param(
            'ASGISERVE = {"RUNSERVER": "yes"}',
            ["ASGISERVE['RUNSERVER'] must be True or False. (asgiserve.E008)"],
            id="runserver-type",
        ),
        pytest.param(
            'ASGISERVE = {"WATCH_PATHS": "src"}',
            ["ASGISERVE['WATCH_PATHS'] must be a list of strings. (asgiserve.E009)"],
            id="watch-paths-type",
        ),
        pytest.param(
            'ASGISERVE = {"GRACEFUL_TIMEOUT": "10"}',
            ["ASGISERVE['GRACEFUL_TIMEOUT'] must be a number of seconds", "(asgiserve.E010)"],
            id="graceful-timeout-type",
        ),
        pytest.param(
            'ASGISERVE = {"GRACEFUL_TIMEOUT": float("inf")}',
            ["ASGISERVE['GRACEFUL_TIMEOUT'] must be a number of seconds", "(asgiserve.E010)"],
            id="graceful-timeout-infinite",
        ),
    ],
)  # fmt: skip
def test_bad_asgiserve_setting(project, body, messages):
    settings = write_settings(project, "settings_bad", body)
    result = manage(project, "asgiserve", "--noreload", "--settings", settings, "127.0.0.1:0")
    assert_fails_clearly(result, *messages)


def test_debug_off_needs_allowed_hosts(project):
    settings = write_settings(project, "settings_prod", "DEBUG = False\nALLOWED_HOSTS = []")
    result = manage(project, "asgiserve", "--noreload", "--settings", settings, "127.0.0.1:0")
    assert_fails_clearly(
        result, "CommandError: You must set settings.ALLOWED_HOSTS if DEBUG is False."
    )
