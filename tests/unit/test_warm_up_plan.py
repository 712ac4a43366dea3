"""The warm-up plan in process: what a serving process notes (the templates its cached loaders
hold, by the names asked for) and what a new one builds from it. The server test
(``tests/e2e/test_warm_up.py``) proves what users see."""

from __future__ import annotations

import json
import os
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


def cached_names() -> set[str]:
    return {name for _alias, names in warm_up.cached_templates() for name in names}


def test_a_plan_names_the_templates_rendered(templates: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    engines["django"].get_template("pages/home.html").render({})
    warm_up.record(str(plan))
    assert json.loads(plan.read_text()) == {"django": ["pages/base.html", "pages/home.html"]}


def test_plans_of_several_processes_add_up(templates: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"django": ["elsewhere.html"], "jinja": ["x.html"]}))
    engines["django"].get_template("pages/base.html")
    warm_up.record(str(plan))
    assert json.loads(plan.read_text()) == {
        "django": ["elsewhere.html", "pages/base.html"],
        "jinja": ["x.html"],
    }


def test_a_new_process_compiles_what_the_plan_names(templates: Path, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"django": ["pages/home.html", "gone.html"]}))
    assert cached_names() == set()
    warm_up.warm_up(str(plan))
    assert cached_names() == {"pages/home.html"}


@pytest.mark.parametrize("content", [None, "", "not json", "[1, 2]"])
def test_no_usable_plan_builds_nothing(templates: Path, tmp_path: Path, content) -> None:
    plan = tmp_path / "plan.json"
    if content is not None:
        plan.write_text(content)
    warm_up.warm_up(str(plan))
    assert cached_names() == set()


def view(request):
    return None


class URLCONF:
    """A URLconf (a module, as far as Django cares)."""

    urlpatterns = [
        path("pages/<slug:slug>/", view, name="page"),
        path("api/", include([re_path(r"^items/(?P<pk>\d+)/$", view, name="item")])),
    ]


def test_populating_urls_plans_their_regular_expressions(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    with override_settings(ROOT_URLCONF=URLCONF):
        warm_up.populate_urls(str(plan))
    planned = json.loads(plan.read_text())[warm_up.PATTERNS]
    assert planned[:2] == ["^api/", r"^items/(?P<pk>\d+)/$"]
    assert len(planned) == 3 and planned[2].startswith("^pages/(?P<slug>")


def test_the_preloader_compiles_new_patterns_once_the_plan_changes(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    compiler = warm_up.PatternCompiler(str(plan))
    compiler.precompile()  # no plan yet: nothing
    plan.write_text(json.dumps({warm_up.PATTERNS: ["^a/$", "(unbalanced"]}))
    compiler.precompile()
    assert compiler.seen == {"^a/$", "(unbalanced"}
    stamp = plan.stat().st_mtime_ns
    plan.write_text(json.dumps({warm_up.PATTERNS: ["^b/$"]}))
    os.utime(plan, ns=(stamp, stamp))
    compiler.precompile()  # the same modification time: not read again
    assert "^b/$" not in compiler.seen
