"""Checks in their place: only serving needs the server installed (``asgiserve.E004``), and only
serving with several workers minds a process-local channel layer (``asgiserve.W002``).

The backend is made "not installed" honestly in every process (``tests.helpers.hiding``): a
migration job or a celery worker built without the server must run ``migrate``, ``check`` and
``shell`` with the same settings, while ``asgiserve`` and ``runserver`` refuse to start.
"""

from __future__ import annotations

import pytest

from tests.helpers.hiding import hiding_environ
from tests.helpers.server import Server

#: The configured backend is hypercorn, with options nobody can check without it.
SETTINGS_WITHOUT_THE_SERVER = """
ASGISERVE = {**ASGISERVE, "BACKEND": "hypercorn", "OPTIONS": {"hypercorn": {"no_such": 1}}}
"""
PROBE = (
    "import importlib.util\n"
    "print('spec:', importlib.util.find_spec('hypercorn'))\n"
    "try:\n"
    "    import hypercorn\n"
    "except ModuleNotFoundError as error:\n"
    "    print('import:', error)\n"
    "from django.conf import settings\n"
    "print('backend:', settings.ASGISERVE['BACKEND'])\n"
)


@pytest.fixture
def without_hypercorn(project, tmp_path) -> dict[str, str]:
    (project / "testproject" / "settings_noserver.py").write_text(
        f"from .settings import *  # noqa: F403\n{SETTINGS_WITHOUT_THE_SERVER}"
    )
    return {
        **hiding_environ(tmp_path / "hidden", "hypercorn"),
        "DJANGO_SETTINGS_MODULE": "testproject.settings_noserver",
    }


def finished(server: Server) -> tuple[int, str]:
    code = server.wait_exit()
    assert "Traceback" not in server.output, server.output
    return code, server.output


def test_the_server_is_really_not_installed(start, without_hypercorn):
    code, output = finished(
        start("-c", PROBE, command="shell", addrport=None, env=without_hypercorn)
    )
    assert code == 0, output
    assert "spec: None" in output
    assert "import: No module named 'hypercorn'" in output
    assert "backend: hypercorn" in output


@pytest.mark.parametrize(
    "args",
    [["migrate", "--noinput"], ["check"], ["check", "--deploy"], ["showmigrations"]],
    ids=" ".join,
)
def test_commands_that_do_not_serve_run_without_the_server(start, without_hypercorn, args):
    command, *rest = args
    code, output = finished(start(*rest, command=command, addrport=None, env=without_hypercorn))
    assert code == 0, output
    assert "asgiserve" not in output
    if args == ["check"]:
        assert "System check identified no issues (0 silenced)." in output
    if args[0] == "migrate":
        assert "Applying demo.0001_initial... OK" in output


@pytest.mark.parametrize("command", ["asgiserve", "runserver"])
def test_serving_without_the_server_is_a_check_error(start, without_hypercorn, command):
    server = start("--noreload", command=command, env=without_hypercorn)
    code, _output = finished(server)
    assert code == 1, server.output
    assert "Quit the server with" not in server.output
    assert server.stderr.text.startswith(
        "SystemCheckError: System check identified some issues:\n\nERRORS:\n"
        "?: (asgiserve.E004) The hypercorn backend is not installed.\n"
        '\tHINT: Install it with: pip install "django-asgiserve[hypercorn]"\n\n'
        "System check identified 1 issue (0 silenced)."
    ), server.stderr.text


def test_another_backend_serves_where_the_configured_one_is_missing(start, without_hypercorn):
    server = start("--noreload", "--backend", "uvicorn", env=without_hypercorn).wait_serving()
    assert server.get("/sync/").status_code == 200
    assert "asgiserve.E004" not in server.output


# -- asgiserve.W002: a channel layer in each process's memory, several processes -------------


@pytest.mark.parametrize("workers", [1, 2])
def test_in_memory_channel_layer_with_workers_warns(start, backend, workers):
    server = start(
        "--noreload", "--backend", backend, "--workers", str(workers),
        env={"ASGISERVE_DEMO_CHANNEL_LAYER": "memory"},
    ).wait_serving()  # fmt: skip
    server.wait_output("Quit the server with")
    if workers == 1:
        assert "asgiserve.W002" not in server.output
        assert "InMemoryChannelLayer" not in server.output
        return
    assert server.output.count("(asgiserve.W002)") == 1, server.output
    assert (
        "?: (asgiserve.W002) CHANNEL_LAYERS['default'] is InMemoryChannelLayer, kept in each "
        "process's memory, and 2 worker processes serve: group messages never cross processes"
    ) in server.stderr.text
    assert "HINT: Use a layer shared by every process, such as channels-redis" in (
        server.stderr.text
    )
    assert "SystemCheckError" not in server.output


def test_the_channel_layer_warning_can_be_silenced(start, project):
    (project / "testproject" / "settings_silenced.py").write_text(
        'from .settings import *  # noqa: F403\nSILENCED_SYSTEM_CHECKS = ["asgiserve.W002"]\n'
    )
    server = start(
        "--noreload", "--workers", "2",
        env={
            "ASGISERVE_DEMO_CHANNEL_LAYER": "memory",
            "DJANGO_SETTINGS_MODULE": "testproject.settings_silenced",
        },
    ).wait_serving()  # fmt: skip
    server.wait_output("Quit the server with")
    assert "W002" not in server.output
