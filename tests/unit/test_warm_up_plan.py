"""The warm-up plan in process: what a serving process notes (the templates its cached loaders
hold, by the names asked for, the URL patterns), what a new one builds from it, and what the
preloader compiles ahead. The server test (``tests/e2e/test_warm_up.py``) proves what users
see."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.template import engines
from django.test import override_settings
from django.urls import include, path, re_path

from django_asgiserve.process import warm_up


@pytest.fixture
def templates(tmp_path: Path):
    folder = tmp_path / "templates"
    (folder / "pages").mkdir(parents=True)
    (folder / "pages" / "base.html").write_text("<main>{% block body %}{% endblock %}</main>")
    (folder / "pages" / "home.html").write_text(
        '{% extends "pages/base.html" %}{% block body %}home{% endblock %}'
    )
    setting = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [folder]}]
    with override_settings(TEMPLATES=setting):  # Django's receiver makes new engines
        yield folder


@pytest.fixture
def plan() -> Iterator[int]:
    fd = warm_up.create_plan()
    yield fd
    os.close(fd)


def write(plan: int, content: str) -> None:
    os.ftruncate(plan, 0)
    os.pwrite(plan, content.encode(), 0)


def cached_names() -> set[str]:
    return {name for _alias, names in warm_up.cached_templates() for name in names}


def test_a_plan_names_the_templates_rendered(templates: Path, plan: int) -> None:
    engines["django"].get_template("pages/home.html").render({})
    warm_up.record(plan)
    assert warm_up.read(plan) == {"django": ["pages/base.html", "pages/home.html"]}


def test_plans_of_several_processes_add_up(templates: Path, plan: int) -> None:
    write(plan, json.dumps({"django": ["elsewhere.html"], "jinja": ["x.html"]}))
    engines["django"].get_template("pages/base.html")
    warm_up.record(plan)
    assert warm_up.read(plan) == {
        "django": ["elsewhere.html", "pages/base.html"],
        "jinja": ["x.html"],
    }


def test_a_new_process_compiles_what_the_plan_names(templates: Path, plan: int) -> None:
    write(plan, json.dumps({"django": ["pages/home.html", "gone.html"]}))
    assert cached_names() == set()
    warm_up.warm_up(plan)
    assert cached_names() == {"pages/home.html"}


@pytest.mark.parametrize("content", ["", "not json", "[1, 2]"])
def test_no_usable_plan_builds_nothing(templates: Path, plan: int, content: str) -> None:
    write(plan, content)
    warm_up.warm_up(plan)
    assert cached_names() == set()


def test_a_plan_is_shared_with_forked_processes(templates: Path, plan: int) -> None:
    pid = os.fork()
    if pid == 0:  # a serving worker's fork notes what it compiled
        engines["django"].get_template("pages/base.html")
        warm_up.record(plan)
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    assert warm_up.read(plan) == {"django": ["pages/base.html"]}


def view(request):
    return None


class URLCONF:
    """A URLconf (a module, as far as Django cares)."""

    urlpatterns = [
        path("pages/<slug:slug>/", view, name="page"),
        path("api/", include([re_path(r"^items/(?P<pk>\d+)/$", view, name="item")])),
    ]


def test_populating_urls_plans_their_regular_expressions(plan: int) -> None:
    with override_settings(ROOT_URLCONF=URLCONF):
        warm_up.populate_urls(plan)
    planned = warm_up.read(plan)[warm_up.PATTERNS]
    assert planned[:2] == ["^api/", r"^items/(?P<pk>\d+)/$"]
    assert len(planned) == 3 and planned[2].startswith("^pages/(?P<slug>")


def test_the_preloader_compiles_new_patterns_once_the_plan_changes(plan: int) -> None:
    compiler = warm_up.PatternCompiler(plan)
    compiler.precompile()  # an empty plan: nothing
    write(plan, json.dumps({warm_up.PATTERNS: ["^a/$", "(unbalanced"]}))
    os.utime(plan, ns=(1, 1))
    compiler.precompile()
    assert compiler.seen == {"^a/$", "(unbalanced"}
    write(plan, json.dumps({warm_up.PATTERNS: ["^b/$"]}))
    os.utime(plan, ns=(1, 1))
    compiler.precompile()  # the same modification time: not read again
    assert "^b/$" not in compiler.seen
