"""``settings.ASGISERVE`` validation: each mistake is one problem with its check id, and a
usable setting loads into the typed view (in process)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_asgiserve import settings as serve_settings


def problem_ids(settings, value: object) -> list[str]:
    settings.ASGISERVE = value
    return [problem.id for problem in serve_settings.problems()]


@pytest.mark.parametrize(
    ("value", "ids"),
    [
        ({}, []),
        ({"BACKEND": "uvicorn", "WORKERS_": 2}, ["asgiserve.E002"]),
        ("uvicorn", ["asgiserve.E001"]),
        ({"BACKEND": "tornado"}, ["asgiserve.E003"]),
        ({"RUNSERVER": "yes"}, ["asgiserve.E008"]),
        ({"PROXY_HEADERS": 1}, ["asgiserve.E008"]),
        ({"WATCH_PATHS": "/srv"}, ["asgiserve.E009"]),
        ({"WATCH_IGNORE": [1]}, ["asgiserve.E009"]),
        ({"FORWARDED_ALLOW_IPS": ["10.0.0.300"]}, ["asgiserve.E011"]),
        ({"GRACEFUL_TIMEOUT": -1}, ["asgiserve.E010"]),
        ({"GRACEFUL_TIMEOUT": float("nan")}, ["asgiserve.E010"]),
        ({"GRACEFUL_TIMEOUT": True}, ["asgiserve.E010"]),
        ({"GRACEFUL_TIMEOUT": None}, []),
        ({"LOOP_WARN_MS": -1}, ["asgiserve.E013"]),
        ({"LOOP_WARN_MS": "fast"}, ["asgiserve.E013"]),
        ({"LOOP_WARN_MS": True}, ["asgiserve.E013"]),
        ({"LOOP_WARN_MS": 0}, []),
        ({"REQUEST_COST": "yes"}, ["asgiserve.E008"]),
        ({"ACCESS_LOG": "no"}, ["asgiserve.E008"]),
        ({"HEALTH_PATH": "healthz"}, ["asgiserve.E014"]),
        ({"HEALTH_PATH": 1}, ["asgiserve.E014"]),
        ({"HEALTH_PATH": "/healthz"}, []),
        ({"DRAIN_DELAY": -1}, ["asgiserve.E015"]),
        ({"DRAIN_DELAY": "soon"}, ["asgiserve.E015"]),
        ({"DRAIN_DELAY": True}, ["asgiserve.E015"]),
        ({"DRAIN_DELAY": 2.5}, []),
        ({"METRICS": "nine"}, ["asgiserve.E016"]),
        ({"METRICS": 9100}, ["asgiserve.E016"]),
        ({"METRICS": "127.0.0.1:99999"}, ["asgiserve.E016"]),
        ({"METRICS": ":9100"}, ["asgiserve.E016"]),
        ({"METRICS": "9100"}, []),
        ({"METRICS": "0:9100"}, []),
        ({"METRICS": "[::1]:9100"}, []),
        ({"STARTUP_TIMEOUT": -1}, ["asgiserve.E018"]),
        ({"STARTUP_TIMEOUT": "1m"}, ["asgiserve.E018"]),
        ({"STARTUP_TIMEOUT": float("inf")}, ["asgiserve.E018"]),
        ({"STARTUP_TIMEOUT": False}, ["asgiserve.E018"]),
        ({"STARTUP_TIMEOUT": 0}, []),
        ({"STARTUP_TIMEOUT": 2.5}, []),
        ({"MAX_REQUESTS": -1}, ["asgiserve.E019"]),
        ({"MAX_REQUESTS": 1000.0}, ["asgiserve.E019"]),
        ({"MAX_REQUESTS": True}, ["asgiserve.E019"]),
        ({"MAX_REQUESTS": 1000}, []),
        ({"MAX_REQUESTS_JITTER": -1}, ["asgiserve.E020"]),
        ({"MAX_REQUESTS_JITTER": "50"}, ["asgiserve.E020"]),
        ({"MAX_REQUESTS_JITTER": 50}, []),
        ({"MAX_WORKER_MEMORY": -1}, ["asgiserve.E021"]),
        ({"MAX_WORKER_MEMORY": "512M"}, ["asgiserve.E021"]),
        ({"MAX_WORKER_MEMORY": 512.5}, ["asgiserve.E021"]),
        ({"MAX_WORKER_MEMORY": None}, ["asgiserve.E021"]),
        ({"MAX_WORKER_MEMORY": 0}, []),
        ({"MAX_WORKER_MEMORY": 512}, []),
        ({"BACKEND": "tornado", "RUNSERVER": 0}, ["asgiserve.E003", "asgiserve.E008"]),
    ],
)
def test_each_mistake_is_one_problem(settings, value, ids) -> None:
    assert problem_ids(settings, value) == ids


def test_a_misspelt_key_gets_a_suggestion(settings) -> None:
    settings.ASGISERVE = {"BAKCEND": "uvicorn"}
    (problem,) = serve_settings.problems()
    assert problem.hint == "Did you mean 'BACKEND'?"


def test_load_raises_the_first_problem_with_its_id_and_hint(settings) -> None:
    settings.ASGISERVE = {"BACKEND": "tornado"}
    with pytest.raises(ImproperlyConfigured, match=r"\(asgiserve\.E003\)\nHINT: Choose one of"):
        serve_settings.load()


def test_load_gives_the_typed_view(settings) -> None:
    settings.ASGISERVE = {
        "BACKEND": "hypercorn",
        "WATCH_PATHS": ["/srv/shared"],
        "GRACEFUL_TIMEOUT": 3,
        "FORWARDED_ALLOW_IPS": [" 10.0.0.0/8 "],
    }
    loaded = serve_settings.load()
    assert loaded.backend == "hypercorn"
    assert loaded.watch_paths == ("/srv/shared",)
    assert loaded.graceful_timeout == 3.0
    assert loaded.forwarded_allow_ips == ("10.0.0.0/8",)
    assert loaded.test_backend == "auto"


def test_load_gives_the_fleet_limits(settings) -> None:
    settings.ASGISERVE = {
        "STARTUP_TIMEOUT": 5,
        "MAX_REQUESTS": 1000,
        "MAX_REQUESTS_JITTER": 50,
        "MAX_WORKER_MEMORY": 512,
    }
    loaded = serve_settings.load()
    assert (loaded.startup_timeout, loaded.max_requests) == (5.0, 1000)
    assert (loaded.max_requests_jitter, loaded.max_worker_memory) == (50, 512)
    settings.ASGISERVE = {}
    defaults = serve_settings.load()
    assert (defaults.startup_timeout, defaults.max_requests) == (60.0, 0)
    assert (defaults.max_requests_jitter, defaults.max_worker_memory) == (0, 0)
