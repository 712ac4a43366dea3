#!/usr/bin/env python
"""Reload benchmark: how fast does each development server show a code or template edit?

For every system it copies the project into a temporary directory, starts the server on a free
loopback port in its own process group and measures

* cold start: spawn -> first HTTP 200 on the view URL;
* reload latency for five kinds of edit, ``--edits`` times each (median, min-max): time from
  the file write to the first response showing the new value, polling every 10 ms with a fresh
  connection each time:

  - view: rewrite the ``MESSAGE = "..."`` constant of the view module, poll the view;
  - urls: append a new ``path()`` answering a unique value to the root URLconf, poll that path
    (404 before it exists is "not yet", not a failure);
  - models: rewrite a constant ``ASGISERVE_BENCH_VALUE`` that the setup appends to the app's
    ``models.py``; a view added to the app's views at setup returns it (``/asgiserve-bench/
    models/``);
  - template: rewrite the template that a view renders, poll that view;
  - page (with ``--page PATH``): a real page of the project, served by its own views and
    templates, with the edit in a small middleware module the setup adds (it appends
    ``<!-- MESSAGE -->`` to that page): rewrite its ``MESSAGE``, poll the page. The first
    request after the reload is then the page's, with its queries and templates;

* failures seen by the poller during every reload and the settle that follows it: connections
  refused, and other failures (reset, timeout, bad status, stale content after the new one).

Before each edit the polled page is requested once (so caches are warm, as for a developer
looking at the page) and a random pause of up to ``--jitter`` seconds decouples the edit from
reloaders that poll on a fixed tick. After the new value shows, the harness keeps polling for
``--settle`` seconds before the next edit. A reload that does not show within ``--timeout``
seconds is "never"; when the first edit of a kind is "never" the rest of that kind is skipped.
Every server is stopped at the end (SIGINT to its process group, then SIGKILL) and its port
checked free, on errors and Ctrl+C too.

The testproject layout (``demo/views.py`` with ``MESSAGE``, ``/sync/``, ``/template/`` rendering
``demo/fragment.html``) is used as is. Any other project (``--project``, ``--generate-wagtail``)
gets a small view module, template and URLs added to one of its apps before the servers start.

Run it with the interpreter of the venv holding the servers::

    python benchmarks/reload.py --systems runserver,uvicorn-reload
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import random
import re
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import _harness as h

if TYPE_CHECKING:
    from collections.abc import Callable

KINDS = ("view", "urls", "models", "template", "page")
BENCH_PREFIX = "asgiserve-bench"
MESSAGE_RE = re.compile(r'^MESSAGE = ".*"$', re.MULTILINE)
MODELS_RE = re.compile(r'^# asgiserve bench edit .*\nASGISERVE_BENCH_VALUE = ".*"$', re.MULTILINE)


# --------------------------------------------------------------------------------------------
# Systems
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class System:
    """A development server configuration to benchmark."""

    name: str
    variant: h.Variant
    build: Callable[[h.ProjectInfo, int], list[str]]
    needs: tuple[str, ...] = ()
    anchor: bool = True

    def available(self) -> bool:
        """Whether every module the system needs is importable."""
        return all(h.module_available(module) for module in self.needs)


def _manage(*args: str) -> Callable[[h.ProjectInfo, int], list[str]]:
    def build(_info: h.ProjectInfo, port: int) -> list[str]:
        return [sys.executable, "manage.py", *args, f"{h.HOST}:{port}"]

    return build


def _asgiserve(backend: str, *extra: str) -> Callable[[h.ProjectInfo, int], list[str]]:
    def build(_info: h.ProjectInfo, port: int) -> list[str]:
        return [
            sys.executable, "manage.py", "asgiserve", "--backend", backend, *extra,
            f"{h.HOST}:{port}",
        ]  # fmt: skip

    return build


def _uvicorn(info: h.ProjectInfo, port: int) -> list[str]:
    return [
        *h.console_script("uvicorn"),
        info.asgi_target,
        "--reload",
        "--host",
        h.HOST,
        "--port",
        str(port),
    ]


def _hypercorn(info: h.ProjectInfo, port: int) -> list[str]:
    return [
        *h.console_script("hypercorn"),
        info.asgi_target,
        "--reload",
        "--bind",
        f"{h.HOST}:{port}",
    ]


def _granian(info: h.ProjectInfo, port: int) -> list[str]:
    return [
        *h.console_script("granian"),
        "--interface",
        "asgi",
        "--reload",
        "--host",
        h.HOST,
        "--port",
        str(port),
        info.asgi_target,
    ]


SYSTEMS: tuple[System, ...] = (
    System("runserver", "plain", _manage("runserver")),
    System(
        "runserver+django-watchfiles",
        "watchfiles",
        _manage("runserver"),
        needs=("django_watchfiles",),
    ),
    System("daphne-runserver", "daphne", _manage("runserver"), needs=("daphne",)),
    System("uvicorn --reload", "plain", _uvicorn, needs=("uvicorn",)),
    System("hypercorn --reload", "plain", _hypercorn, needs=("hypercorn",)),
    System("granian --reload", "plain", _granian, needs=("granian",)),
    System(
        "asgiserve-uvicorn",
        "asgiserve",
        _asgiserve("uvicorn"),
        needs=("uvicorn",),
        anchor=False,
    ),
    System(
        "asgiserve-uvicorn-nowarm",
        "asgiserve-cold",
        _asgiserve("uvicorn"),
        needs=("uvicorn",),
        anchor=False,
    ),
    System(
        "asgiserve-daphne",
        "asgiserve",
        _asgiserve("daphne"),
        needs=("daphne",),
        anchor=False,
    ),
    System(
        "asgiserve-hypercorn",
        "asgiserve",
        _asgiserve("hypercorn"),
        needs=("hypercorn",),
        anchor=False,
    ),
    # The spawn process model (macOS's default, Windows' only one): a fresh interpreter per
    # worker, as uvicorn --reload starts one per reload.
    System(
        "asgiserve-uvicorn-spawn",
        "asgiserve",
        _asgiserve("uvicorn", "--process-model", "spawn"),
        needs=("uvicorn",),
        anchor=False,
    ),
)

ALIASES = {
    "uvicorn": "uvicorn --reload",
    "uvicorn-reload": "uvicorn --reload",
    "hypercorn": "hypercorn --reload",
    "hypercorn-reload": "hypercorn --reload",
    "granian": "granian --reload",
    "granian-reload": "granian --reload",
    "django-watchfiles": "runserver+django-watchfiles",
    "anchors": "",
    "asgiserve": "",
}


def select_systems(spec: str | None) -> list[System]:
    """Systems named in ``--systems`` (names or aliases, comma separated), default all."""
    by_name = {s.name: s for s in SYSTEMS}
    if not spec:
        return list(SYSTEMS)
    chosen: list[System] = []
    for raw in spec.split(","):
        token = raw.strip()
        if not token:
            continue
        if token == "anchors":
            group = [s for s in SYSTEMS if s.anchor]
        elif token == "asgiserve":
            group = [s for s in SYSTEMS if not s.anchor]
        elif ALIASES.get(token, token) in by_name:
            group = [by_name[ALIASES.get(token, token)]]
        else:
            names = ", ".join([*by_name, *(a for a in ALIASES if ALIASES[a])])
            raise SystemExit(f"unknown system {token!r}; known: {names}, anchors, asgiserve")
        chosen.extend(s for s in group if s not in chosen)
    return chosen


# --------------------------------------------------------------------------------------------
# Edit targets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The files the benchmark edits and the URLs that show each edit."""

    views_file: Path
    view_url: str
    urls_file: Path
    models_file: Path | None
    models_url: str
    template_file: Path
    template_url: str
    layout: str
    #: With ``--page``: the middleware module whose edit shows on ``page_url``.
    page_file: Path | None = None
    page_url: str = ""

    def rebased(self, old: Path, new: Path) -> Target:
        """The same target in a copy of the project made at ``new``."""

        def move(path: Path) -> Path:
            return new / path.relative_to(old)

        return dataclasses.replace(
            self,
            views_file=move(self.views_file),
            urls_file=move(self.urls_file),
            models_file=move(self.models_file) if self.models_file else None,
            template_file=move(self.template_file),
            page_file=move(self.page_file) if self.page_file else None,
        )


BENCH_VIEWS = '''"""Views added by django-asgiserve's reload benchmark."""

from django.http import HttpResponse
from django.shortcuts import render

MESSAGE = "initial"


def asgiserve_bench_message(request):
    return HttpResponse(MESSAGE, content_type="text/plain")


def asgiserve_bench_template(request):
    return render(request, "{label}/asgiserve_bench_fragment.html")
'''

MODELS_VIEW = '''

def asgiserve_bench_models(request):
    """Added by django-asgiserve's reload benchmark: returns a constant of models.py."""
    from django.http import HttpResponse

    from {app} import models

    return HttpResponse(models.ASGISERVE_BENCH_VALUE, content_type="text/plain")
'''

PAGE_MIDDLEWARE = '''"""Added by django-asgiserve's reload benchmark: the page edit shows here."""

MESSAGE = "initial"


def asgiserve_bench_page(get_response):
    def middleware(request):
        response = get_response(request)
        if request.path == {page!r} and not response.streaming:
            response.content += f"<!-- {{MESSAGE}} -->".encode()
        return response

    return middleware
'''

#: Renders ``argv[1]`` once (image renditions and the like are then in the database and media).
RENDER_ONCE = """
import sys
import django
django.setup()
from django.test import Client
response = Client().get(sys.argv[1], HTTP_HOST="localhost")
print(response.status_code)
"""

URLS_SETUP = """

# --- added by django-asgiserve's reload benchmark ---
from django.http import HttpResponse as _AsgiserveBenchResponse  # noqa: E402
from django.urls import path as _asgiserve_bench_path  # noqa: E402

import {views_module} as _asgiserve_bench_views  # noqa: E402

urlpatterns = [
    _asgiserve_bench_path("{prefix}/models/", _asgiserve_bench_views.asgiserve_bench_models),
{extra}    *urlpatterns,
]
"""


def _choose_app(info: h.ProjectInfo, wanted: str | None) -> str:
    """The app (dotted, as in ``INSTALLED_APPS``) that receives the benchmark's view, template
    and models constant: a top-level package with a ``models.py``, else an installed app of the
    project with one (``hc.front``), else the first top-level package."""
    if wanted:
        if not _app_dir(info, wanted).is_dir():
            raise SystemExit(f"--app {wanted}: no such directory in {info.root}")
        return wanted
    tops = [app.split(".")[0] for app in info.installed_apps]
    local = [app for app in tops if (info.root / app).is_dir()]
    dotted = [app for app in info.installed_apps if "." in app and _app_dir(info, app).is_dir()]
    for app in [*local, *dotted]:
        if (_app_dir(info, app) / "models.py").is_file():
            return app
    if local:
        return local[0]
    raise SystemExit("cannot find a project app to add the benchmark view to; pass --app")


def _app_dir(info: h.ProjectInfo, app: str) -> Path:
    return info.root.joinpath(*app.split("."))


def setup_page(info: h.ProjectInfo, app: str, page: str) -> Path:
    """The middleware that shows the page edit on ``page``, added last to ``MIDDLEWARE``."""
    page_file = _app_dir(info, app) / "asgiserve_bench_page.py"
    page_file.write_text(PAGE_MIDDLEWARE.format(page=page))
    with (info.root / f"{h.OVERLAY_MODULE}.py").open("a") as fh:
        fh.write(
            f'\nMIDDLEWARE = [*MIDDLEWARE, "{app}.asgiserve_bench_page.asgiserve_bench_page"]\n'
        )
    return page_file


def setup_target(info: h.ProjectInfo, wanted_app: str | None, page: str | None = None) -> Target:
    """Add the benchmark's hooks to the copied project and describe what to edit and poll."""
    root = info.root
    demo_views = root / "demo" / "views.py"
    demo_fragment = root / "demo" / "templates" / "demo" / "fragment.html"
    testproject_layout = (
        wanted_app in (None, "demo")
        and demo_views.is_file()
        and demo_fragment.is_file()
        and MESSAGE_RE.search(demo_views.read_text()) is not None
    )
    urls_file = info.module_path(info.root_urlconf)
    if testproject_layout:
        app = "demo"
        views_file = demo_views
        template_file = demo_fragment
        view_url, template_url = "/sync/", "/template/"
        views_module = "demo.views"
        extra_urls = ""
    else:
        app = _choose_app(info, wanted_app)
        if not info.template_app_dirs:
            raise SystemExit("the generic setup needs a TEMPLATES entry with APP_DIRS=True")
        label = app.rsplit(".", 1)[-1]
        views_file = _app_dir(info, app) / "asgiserve_bench_views.py"
        views_file.write_text(BENCH_VIEWS.replace("{label}", label))
        template_file = _app_dir(info, app) / "templates" / label / "asgiserve_bench_fragment.html"
        template_file.parent.mkdir(parents=True, exist_ok=True)
        template_file.write_text("template initial\n")
        view_url, template_url = f"/{BENCH_PREFIX}/view/", f"/{BENCH_PREFIX}/template/"
        views_module = f"{app}.asgiserve_bench_views"
        extra_urls = "".join(
            f'    _asgiserve_bench_path("{BENCH_PREFIX}/{name}/", '
            f"_asgiserve_bench_views.asgiserve_bench_{view}),\n"
            for name, view in (("view", "message"), ("template", "template"))
        )
    models_file = _app_dir(info, app) / "models.py"
    has_models = models_file.is_file()
    if has_models:
        with models_file.open("a") as fh:
            fh.write('\n\n# asgiserve bench edit 0\nASGISERVE_BENCH_VALUE = "initial"\n')
        with views_file.open("a") as fh:
            fh.write(MODELS_VIEW.replace("{app}", app))
    else:
        with views_file.open("a") as fh:
            fh.write(
                "\n\ndef asgiserve_bench_models(request):\n"
                "    from django.http import HttpResponse\n\n"
                '    return HttpResponse("no models.py", status=404)\n'
            )
    with urls_file.open("a") as fh:
        fh.write(
            URLS_SETUP.format(views_module=views_module, prefix=BENCH_PREFIX, extra=extra_urls)
        )
    return Target(
        page_file=setup_page(info, app, page) if page else None,
        page_url=page or "",
        views_file=views_file,
        view_url=view_url,
        urls_file=urls_file,
        models_file=models_file if has_models else None,
        models_url=f"/{BENCH_PREFIX}/models/",
        template_file=template_file,
        template_url=template_url,
        layout="testproject" if testproject_layout else f"generic (app {app!r})",
    )


@dataclass(frozen=True)
class Edit:
    """One edit: apply it, then poll ``url`` until its body contains ``token``."""

    kind: str
    url: str
    token: str
    apply: Callable[[], None]
    missing_is_pending: bool = False
    prime_url: str = ""


def make_edit(target: Target, kind: str, index: int, system_slug: str) -> Edit | None:
    """Build the ``index``-th edit of ``kind``; None when the project cannot have it.

    Tokens grow by one character per edit so that a file's size always changes: a same-size
    rewrite within the same second would otherwise be served from a stale ``.pyc``.
    """
    token = f"{kind}-{system_slug}-{index:02d}-{secrets.token_hex(4)}-" + "x" * index

    if kind == "view":
        path = target.views_file

        def apply_view() -> None:
            text = MESSAGE_RE.sub(f'MESSAGE = "{token}"', path.read_text(), count=1)
            path.write_text(text)

        return Edit(kind, target.view_url, token, apply_view)
    if kind == "urls":
        path = target.urls_file
        url = f"/{BENCH_PREFIX}/urls-{index}/"
        line = (
            f'urlpatterns = [_asgiserve_bench_path("{url[1:]}", '
            f'lambda request: _AsgiserveBenchResponse("{token}")), *urlpatterns]\n'
        )

        def apply_urls() -> None:
            with path.open("a") as fh:
                fh.write(line)

        return Edit(kind, url, token, apply_urls, True, prime_url=target.view_url)
    if kind == "models":
        if target.models_file is None:
            return None
        path = target.models_file
        replacement = f'# asgiserve bench edit {index}\nASGISERVE_BENCH_VALUE = "{token}"'

        def apply_models() -> None:
            path.write_text(MODELS_RE.sub(replacement, path.read_text(), count=1))

        return Edit(kind, target.models_url, token, apply_models)
    if kind == "page":
        if target.page_file is None:
            return None
        page_file = target.page_file

        def apply_page() -> None:
            page_file.write_text(MESSAGE_RE.sub(f'MESSAGE = "{token}"', page_file.read_text()))

        return Edit(kind, target.page_url, token, apply_page)
    if kind == "template":
        path = target.template_file

        def apply_template() -> None:
            path.write_text(f"template {token}\n")

        return Edit(kind, target.template_url, token, apply_template)
    raise ValueError(kind)


# --------------------------------------------------------------------------------------------
# Measurement
# --------------------------------------------------------------------------------------------


@dataclass
class SystemResult:
    """Everything measured for one system."""

    name: str
    anchor: bool
    status: str = "ok"
    cold_start: float | None = None
    latencies: dict[str, list[float | None]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    other: int = 0
    failure_samples: list[str] = field(default_factory=list)
    port_freed: bool | None = None

    def note_failure(self, kind: str, what: str) -> None:
        """Count a failure seen by the poller and keep a few examples for the log."""
        if what == "refused":
            self.refused += 1
        else:
            self.other += 1
        if len(self.failure_samples) < 8:
            self.failure_samples.append(f"{kind}: {what}")

    def median(self, kind: str) -> float | None:
        """Median of the successful reloads of ``kind`` (None when there are none)."""
        values = [v for v in self.latencies.get(kind, []) if v is not None]
        return statistics.median(values) if values else None


@dataclass(frozen=True)
class Options:
    """Tunables of a run."""

    edits: int
    timeout: float
    settle: float
    warmup: float
    start_timeout: float
    jitter: float
    interval: float = 0.01


def _classify(probe: h.Probe, edit: Edit, token_seen: bool) -> str | None:
    """Failure label for a poll result, or None when it is fine (new or not-yet-new content)."""
    if probe.outcome == "refused":
        return "refused"
    if probe.outcome == "error":
        return probe.error
    if probe.status == 200:
        if token_seen and edit.token not in probe.body:
            return "stale content after the new one"
        return None
    if probe.status == 404 and edit.missing_is_pending and not token_seen:
        return None
    return f"HTTP {probe.status}"


def measure_edit(server: h.Server, edit: Edit, opts: Options, result: SystemResult) -> float | None:
    """Apply ``edit`` and return seconds until it shows (None: never, or the server died).

    The page is requested once first, as a developer looks at a page before editing it, so
    that the edit does not land in a process that never loaded the view or cached the template
    (after a reload caused by another kind of edit, say).
    """
    h.get(server.port, edit.prime_url or edit.url, timeout=5.0)
    # A random pause decouples the edit from polling reloaders' ticks (runserver's StatReloader
    # checks once a second): without it the edits fall at the same phase of the tick each time.
    time.sleep(random.uniform(0.0, opts.jitter))
    start = time.perf_counter()
    edit.apply()
    deadline = start + opts.timeout
    latency: float | None = None
    while time.perf_counter() < deadline:
        if not server.alive():
            return None
        remaining = deadline - time.perf_counter()
        probe = h.get(server.port, edit.url, timeout=min(5.0, max(remaining, 0.05)))
        if probe.outcome == "ok" and probe.status == 200 and edit.token in probe.body:
            latency = time.perf_counter() - start
            break
        failure = _classify(probe, edit, token_seen=False)
        if failure is not None:
            result.note_failure(edit.kind, failure)
        time.sleep(opts.interval)
    if latency is None:
        return None
    settle_end = time.perf_counter() + opts.settle
    while time.perf_counter() < settle_end and server.alive():
        probe = h.get(server.port, edit.url, timeout=5.0)
        failure = _classify(probe, edit, token_seen=True)
        if failure is not None:
            result.note_failure(edit.kind, failure)
        time.sleep(opts.interval)
    server.remember_descendants()
    return latency


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def run_system(
    system: System,
    golden: tuple[h.ProjectInfo, Target],
    scratch: Path,
    kinds: tuple[str, ...],
    opts: Options,
    env: dict[str, str],
) -> SystemResult:
    """Copy the prepared project, start ``system`` on it and measure every edit kind."""
    result = SystemResult(system.name, system.anchor)
    slug = _slug(system.name)
    workdir = scratch / slug
    golden_info, golden_target = golden
    root = workdir / "project"
    shutil.copytree(golden_info.root, root, symlinks=True)
    info = dataclasses.replace(golden_info, root=root)
    target = golden_target.rebased(golden_info.root, root)
    env = {**env, "ASGISERVE_BENCH_VARIANT": system.variant}
    port = h.free_port()
    server = h.Server(
        system.name,
        [*h.SERVER_CPU, *system.build(info, port)],
        root,
        env,
        port,
        workdir / "server.log",
    )
    _log(f"[{system.name}] {target.layout}: {' '.join(server.cmd)} (log: {server.log_path})")
    with h.running(server):
        result.cold_start = server.wait_ready(target.view_url, opts.start_timeout)
        if result.cold_start is None:
            result.status = "failed to start"
            _log(f"[{system.name}] failed to start; last output:\n{server.log_tail()}")
            return result
        _log(f"[{system.name}] cold start {result.cold_start * 1000:.0f} ms")
        time.sleep(opts.warmup)
        # Visit every polled page once, as a developer would before editing: the URLconf is
        # loaded and the template cached, so the first edit is not served by a cold cache.
        for url in (target.view_url, target.models_url, target.template_url, target.page_url):
            if url:
                h.get(port, url, timeout=5.0)
        for kind in kinds:
            values: list[float | None] = []
            result.latencies[kind] = values
            for index in range(1, opts.edits + 1):
                edit = make_edit(target, kind, index, slug)
                if edit is None:
                    del result.latencies[kind]
                    break
                latency = measure_edit(server, edit, opts, result)
                if not server.alive():
                    result.status = "died"
                    _log(f"[{system.name}] server died during a {kind} edit:\n{server.log_tail()}")
                    return result
                values.append(latency)
                if latency is None and index == 1:
                    result.skipped[kind] = opts.edits - 1
                    break
            _log(f"[{system.name}] {kind}: {_fmt_latencies(result, kind)}")
    result.port_freed = server.port_freed
    if result.failure_samples:
        _log(f"[{system.name}] failure samples: {result.failure_samples}")
    return result


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _fmt_latencies(result: SystemResult, kind: str) -> str:
    if kind not in result.latencies:
        return "n/a"
    values = result.latencies[kind]
    ok = [v for v in values if v is not None]
    never = len(values) - len(ok) + result.skipped.get(kind, 0)
    if not ok:
        return "never" if values else "n/a"
    text = f"{_ms(statistics.median(ok))} ({_ms(min(ok))}-{_ms(max(ok))})"
    if never:
        text += f", {never} never"
    return text


def render(results: list[SystemResult], kinds: tuple[str, ...]) -> str:
    """The Markdown table and the ratio lines."""
    headers = ["system", "cold start", *[f"{k} edit med (min-max)" for k in kinds]]
    headers += ["refused", "other failures"]
    rows: list[list[str]] = []
    for r in results:
        if r.status == "failed to start":
            rows.append([r.name, "failed to start", *["-" for _ in kinds], "-", "-"])
            continue
        cold = _ms(r.cold_start) if r.cold_start is not None else "-"
        cells = [_fmt_latencies(r, k) for k in kinds]
        if r.status == "died":
            cells = [c if k in r.latencies else "died" for c, k in zip(cells, kinds, strict=True)]
        rows.append([r.name, cold, *cells, str(r.refused), str(r.other)])
    lines = [h.markdown_table(headers, rows)]
    lines.extend(_ratio_lines(results))
    stuck = [r.name for r in results if r.port_freed is False]
    if stuck:
        lines.append(f"\nWarning: port still busy after stopping: {', '.join(stuck)}")
    return "\n".join(lines)


def _ratio_lines(results: list[SystemResult]) -> list[str]:
    anchors = [(r.median("view"), r.name) for r in results if r.anchor]
    measured = [(m, n) for m, n in anchors if m is not None]
    contenders = [r for r in results if not r.anchor]
    if not contenders:
        return []
    if not measured:
        return ["", "View-edit ratio: no anchor showed a view edit."]
    best, best_name = min(measured)
    lines = ["", f"View-edit ratio against the fastest anchor ({best_name}, {_ms(best)} median):"]
    for r in contenders:
        median = r.median("view")
        if median is None:
            lines.append(f"- {r.name}: no view-edit result ({r.status})")
            continue
        ratio = best / median
        verdict = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
        lines.append(f"- {r.name}: {_ms(median)} median -> {verdict} than {best_name}")
    return lines


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Projects
# --------------------------------------------------------------------------------------------


def generate_wagtail(scratch: Path) -> Path:
    """Install wagtail if missing (keeping the installed Django) and ``wagtail start`` a site."""
    if not h.module_available("wagtail"):
        import django

        _log(f"installing wagtail into {sys.prefix} (keeping Django {django.__version__}) ...")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "wagtail",
                f"Django=={django.__version__}",
            ],
            check=True,
            timeout=900,
        )
    parent = scratch / "wagtail-source"
    parent.mkdir()
    _log("running wagtail start ...")
    subprocess.run(
        [*h.console_script("wagtail"), "start", "benchsite", str(parent)],
        check=True,
        timeout=300,
        stdout=subprocess.DEVNULL,
    )
    return parent


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    names = ", ".join(s.name for s in SYSTEMS)
    parser = argparse.ArgumentParser(
        description="Measure cold start and reload latency of Django development servers.",
        epilog=f"Systems: {names}. Aliases: uvicorn, hypercorn, granian, django-watchfiles, "
        "anchors (every non-asgiserve system), asgiserve (every asgiserve system).",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--project",
        type=Path,
        default=h.DEFAULT_PROJECT,
        help="Django project directory (holding manage.py) to copy; default: %(default)s",
    )
    source.add_argument(
        "--generate-wagtail",
        action="store_true",
        help="pip-install wagtail if missing, 'wagtail start' a site in a temp dir, use it",
    )
    parser.add_argument("--systems", help="comma-separated systems (default: all available)")
    parser.add_argument("--edits", type=int, default=10, help="edits per kind (default: 10)")
    parser.add_argument(
        "--kinds",
        help=f"comma-separated edit kinds among {', '.join(KINDS)} (default: all; page only "
        "with --page)",
    )
    parser.add_argument(
        "--timeout", type=float, default=20.0, help="seconds before a reload is 'never' (20)"
    )
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds of polling after each reload (1.0)"
    )
    parser.add_argument(
        "--warmup", type=float, default=1.5, help="seconds between ready and first edit (1.5)"
    )
    parser.add_argument(
        "--start-timeout", type=float, default=60.0, help="seconds allowed for a cold start (60)"
    )
    parser.add_argument(
        "--jitter",
        type=float,
        default=1.0,
        help="random pause of up to this many seconds before each edit (1.0)",
    )
    parser.add_argument("--app", help="app receiving the benchmark hooks (generic projects)")
    parser.add_argument(
        "--page", help="a real page of the project (URL path) for the 'page' edit kind"
    )
    parser.add_argument(
        "--prepare",
        action="append",
        default=[],
        metavar="COMMAND",
        help="a manage.py command run after migrate, e.g. load_initial_data (repeatable)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (copies and logs)"
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="servers on CPU 1, this process (the poller, the edits) on CPU 0",
    )
    args = parser.parse_args(argv)
    default = ",".join(k for k in KINDS if k != "page" or args.page)
    kinds = tuple(k.strip() for k in (args.kinds or default).split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        parser.error(f"--kinds: unknown kind(s) {unknown}; choose among {', '.join(KINDS)}")
    args.kinds = kinds
    if args.edits < 1:
        parser.error("--edits must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    args = parse_args(argv)
    h.install_cleanup()
    if args.pin:
        h.pin()
        os.sched_setaffinity(0, {0})
    systems = select_systems(args.systems)
    missing = [s.name for s in systems if not s.available()]
    systems = [s for s in systems if s.available()]
    if missing:
        _log(f"skipping (not installed): {', '.join(missing)}")
    opts = Options(
        args.edits, args.timeout, args.settle, args.warmup, args.start_timeout, args.jitter
    )
    scratch = Path(tempfile.mkdtemp(prefix="asgiserve-reload-bench-"))
    results: list[SystemResult] = []
    try:
        source = generate_wagtail(scratch) if args.generate_wagtail else args.project.resolve()
        asgiserve_path = h.asgiserve_pythonpath(scratch)
        env = h.base_env([asgiserve_path] if asgiserve_path else [])
        info = h.prepare_project(h.copy_project(source, scratch / "golden"), env)
        plain = {**env, "ASGISERVE_BENCH_VARIANT": "plain"}
        for command in args.prepare:
            _log(f"manage.py {command} ...")
            h.run_checked(
                [sys.executable, "manage.py", *shlex.split(command)], cwd=info.root, env=plain
            )
        if args.page:  # what the page builds on its first visit ever is in every copy
            _log(f"rendering {args.page} once ...")
            h.run_checked([sys.executable, "-c", RENDER_ONCE, args.page], cwd=info.root, env=plain)
        golden = (info, setup_target(info, args.app, args.page))
        _log(f"project {source} prepared in {info.root} ({golden[1].layout})")
        for system in systems:
            try:
                results.append(run_system(system, golden, scratch, args.kinds, opts, env))
            except SystemExit as exc:  # a setup step failed for this system: report, go on
                _log(f"[{system.name}] setup failed: {exc}")
                results.append(SystemResult(system.name, system.anchor, "failed to start"))
    except KeyboardInterrupt:
        _log("interrupted: stopping servers")
        h.stop_all()
        if results:
            print(render(results, args.kinds))
        return 130
    finally:
        h.stop_all()
        if args.keep:
            _log(f"kept {scratch}")
        else:
            with contextlib.suppress(OSError):
                shutil.rmtree(scratch)
    project = "a new 'wagtail start' site" if args.generate_wagtail else str(source)
    print(
        f"Project: {project}; {args.edits} edits per kind; Python {sys.version.split()[0]}; "
        f"{h.machine_load()}\n"
    )
    print(render(results, args.kinds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
