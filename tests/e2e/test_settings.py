"""System checks (``asgiserve.E0xx``/``W001``, and Django's own at start-up) and the ``runserver``
override that ``ASGISERVE['RUNSERVER']`` and the app order decide."""

from __future__ import annotations

import re
import socket

import pytest

from tests.helpers.commands import assert_fails_clearly, manage, write_settings

MESSAGE = "hello from testproject"
APP_BELOW_STATICFILES = """
INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "django_asgiserve"]
INSTALLED_APPS.insert(INSTALLED_APPS.index("django.contrib.staticfiles") + 1, "django_asgiserve")
"""
#: The same apps, named by their AppConfig classes.
APP_CONFIG_NAMES = """
INSTALLED_APPS = [
    {
        "django_asgiserve": "django_asgiserve.apps.AsgiserveConfig",
        "django.contrib.staticfiles": "django.contrib.staticfiles.apps.StaticFilesConfig",
    }.get(app, app)
    for app in INSTALLED_APPS
]
"""


def check_ids(output: str) -> set[str]:
    return set(re.findall(r"\((asgiserve\.[EW]\d{3})\)", output))


# -- manage.py check ----------------------------------------------------------------------------


def test_demo_settings_pass_the_checks(project):
    result = manage(project, "check")
    assert result.code == 0, result.output
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_reports_every_asgiserve_problem(project):
    settings = write_settings(
        project,
        "settings_bad",
        """ASGISERVE = {
    "BACKEDN": "uvicorn",
    "BACKEND": "waitress",
    "OPTIONS": {"uvicorn": {"workers": 4, "nope": 1}, "nginx": {}},
    "RUNSERVER": "yes",
    "WATCH_PATHS": "src",
    "GRACEFUL_TIMEOUT": -1,
}""",
    )
    result = manage(project, "check", "--settings", settings)
    assert result.code == 1, result.output
    assert check_ids(result.output) == {
        "asgiserve.E002",
        "asgiserve.E003",
        "asgiserve.E006",
        "asgiserve.E007",
        "asgiserve.E008",
        "asgiserve.E009",
        "asgiserve.E010",
    }
    assert "HINT: Did you mean 'BACKEND'?" in result.stderr
    assert "'workers' is set by asgiserve" in result.stderr
    assert "'nope' is not a uvicorn option. Valid options:" in result.stderr
    assert "Traceback" not in result.output


def test_check_reports_a_setting_that_is_not_a_dict(project):
    settings = write_settings(project, "settings_bad", 'ASGISERVE = "uvicorn"')
    result = manage(project, "check", "--settings", settings)
    assert result.code == 1, result.output
    assert check_ids(result.output) == {"asgiserve.E001"}
    assert "ASGISERVE must be a dict, not str." in result.stderr


@pytest.mark.parametrize(
    ("body", "warned"),
    [
        pytest.param(APP_BELOW_STATICFILES, True, id="below"),
        pytest.param(APP_BELOW_STATICFILES + APP_CONFIG_NAMES, True, id="below-as-app-configs"),
        pytest.param(APP_CONFIG_NAMES, False, id="above-as-app-configs"),
        pytest.param(
            APP_BELOW_STATICFILES + 'ASGISERVE = {**ASGISERVE, "RUNSERVER": False}',
            False,
            id="below-with-runserver-off",
        ),
    ],
)
def test_app_below_staticfiles_warns(project, body, warned):
    settings = write_settings(project, "settings_order", body)
    result = manage(project, "check", "--settings", settings)
    assert result.code == 0, result.output
    if warned:
        assert check_ids(result.output) == {"asgiserve.W001"}
        assert "django_asgiserve is listed below django.contrib.staticfiles" in result.stderr
        assert "System check identified 1 issue (0 silenced)." in result.output
    else:
        assert check_ids(result.output) == set()
        assert "System check identified no issues (0 silenced)." in result.stdout


# -- checks when serving ------------------------------------------------------------------------


def test_asgiserve_runs_the_checks(start):
    server = start("--noreload").wait_serving()
    out = server.stdout.text
    assert "Performing system checks...\n\nSystem check identified no issues (0 silenced)." in out
    assert out.index("System check identified") < out.index("Quit the server with CONTROL-C.")


#: A problem only Django's own checks see: the settings load and the site could be served.
CHECK_ERROR = 'STATICFILES_DIRS = "static"'


def test_check_error_with_noreload_exits(project):
    settings = write_settings(project, "settings_check", CHECK_ERROR)
    result = manage(project, "asgiserve", "--noreload", "--settings", settings, "127.0.0.1:0")
    assert_fails_clearly(
        result,
        "System check identified some issues:",
        "(staticfiles.E001) The STATICFILES_DIRS setting is not a tuple or list.",
    )


def test_check_error_with_reloader_keeps_serving(start, project):
    settings = write_settings(project, "settings_check", CHECK_ERROR)
    server = start("--settings", settings).wait_serving()
    server.wait_output("(staticfiles.E001)")
    server.wait_output("The server keeps running; it reloads when you fix the code.")
    assert server.get("/sync/").text == MESSAGE
    assert server.process.poll() is None


# -- the runserver override ---------------------------------------------------------------------


def test_runserver_is_asgiserve_by_default(start):
    server = start("--noreload", "--skip-checks", command="runserver").wait_serving()
    assert server.port != 0
    assert re.search(r"Starting ASGI/\w+ \S+ .*server at http://127\.0\.0\.1:\d+/", server.output)
    assert server.get("/sync/").text == MESSAGE
    server.wait_output('"GET /sync/ HTTP/1.1" 200 22')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("apps", ["", APP_CONFIG_NAMES], ids=["app-names", "app-configs"])
def test_runserver_is_djangos_when_turned_off(start, project, apps):
    settings = write_settings(
        project, "settings_wsgi", f'{apps}\nASGISERVE = {{**ASGISERVE, "RUNSERVER": False}}'
    )
    # Django before 5.2's on_bind printed the port it was given, so give it a real one.
    port = free_port()
    server = start(
        "--noreload", "--skip-checks", "--settings", settings,
        command="runserver", addrport=f"127.0.0.1:{port}",
    )  # fmt: skip
    server.wait_serving()
    assert server.port == port
    assert f"development server at http://127.0.0.1:{port}/" in server.stdout.text
    assert "ASGI/" not in server.output
    assert server.get("/sync/").text == MESSAGE
    # django.contrib.staticfiles' runserver, which serves static files.
    assert server.get("/static/demo/app.css").status_code == 200
