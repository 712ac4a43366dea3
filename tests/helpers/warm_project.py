"""A view that shows what its request had to build, added to a test's copy of ``testproject``.

``install(project, runs)`` writes ``demo/warm_views.py`` (routed at ``/warm/``), a template
``demo/warm.html`` that loads a tag library counting its own compilations and translates a
string from an i18n catalog of ``LANGUAGE_CODE`` (``demo/locale/en_US``). Each run of the view is
appended to ``runs`` (its pid): a warm-up that ran a view would show there.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers.gettext_mo import write_mo

TAGS = """
from django import template

register = template.Library()

#: One entry per compilation of a template that uses the tag, in this process.
COMPILED = []


class Mark(template.Node):
    def render(self, context):
        return ""


@register.tag
def compiled_mark(parser, token):
    COMPILED.append(token.contents)
    return Mark()
"""

TEMPLATE = """{% load i18n warm_marks %}{% compiled_mark %}{% translate "warm greeting" %}"""

VIEWS = """
import os
from pathlib import Path

from django.http import JsonResponse
from django.template.loader import render_to_string
from django.urls import get_resolver
from django.utils import translation

from demo.templatetags import warm_marks

MESSAGE = "first"
RUNS = Path(os.environ["ASGISERVE_TEST_WARM_RUNS"])


def warm(request):
    with RUNS.open("a") as runs:
        runs.write(f"{os.getpid()}\\n")
    # What Django builds lazily, looked at before this request builds it.
    state = {
        "pid": os.getpid(),
        "message": MESSAGE,
        "urls_populated": translation.get_language() in get_resolver()._reverse_dict,
    }
    compiled = len(warm_marks.COMPILED)
    state["text"] = render_to_string("demo/warm.html").strip()
    state["compiled"] = len(warm_marks.COMPILED) - compiled
    return JsonResponse(state)
"""


def install(project: Path) -> None:
    demo = project / "demo"
    (demo / "templatetags").mkdir()
    (demo / "templatetags" / "__init__.py").write_text("")
    (demo / "templatetags" / "warm_marks.py").write_text(TAGS)
    (demo / "templates" / "demo" / "warm.html").write_text(TEMPLATE)
    write_mo(demo / "locale" / "en_US" / "LC_MESSAGES" / "django.mo", {"warm greeting": "warm hi"})
    (demo / "warm_views.py").write_text(VIEWS)
    urls = project / "testproject" / "urls.py"
    urls.write_text(
        urls.read_text()
        + "\nfrom demo import warm_views\n"
        + 'urlpatterns.append(path("warm/", warm_views.warm))\n'
    )
