"""The upstream probes in process: what each finds on the installed releases, what the fallbacks
that lose nothing do (said only at verbosity 2), and that each module's docstring, the docs page
and ``pyproject.toml`` name what the code relies on and the versions it was tested with.

What the user sees when a release changes something (the command's message, a fallback serving)
is in ``tests/e2e/test_upstream_django.py`` and ``tests/e2e/test_upstream_servers.py``.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType

import pytest
from packaging.version import Version

from django_asgiserve import upstream
from django_asgiserve.upstream import django as django_internals
from django_asgiserve.upstream.probing import Reliance

REPO = Path(__file__).resolve().parents[2]
VERSIONS_PAGE = REPO / "docs" / "versions.md"


def modules() -> list[ModuleType]:
    return [import_module(f"django_asgiserve.upstream.{name}") for name in upstream.MODULES]


def reliances(module: ModuleType) -> list[Reliance]:
    return list(module.CHECKS)


def installed(module: ModuleType) -> bool:
    try:
        version(module.UPSTREAM.distribution)
    except PackageNotFoundError:
        return False
    return True


@pytest.fixture(autouse=True)
def fresh_probes():
    """Each test probes anew, and leaves no finding of a hidden attribute behind."""
    for module in modules():
        module.probe.cache_clear()
    yield
    for module in modules():
        module.probe.cache_clear()


@pytest.mark.parametrize("name", upstream.MODULES)
def test_the_installed_release_has_everything_asgiserve_relies_on(name):
    module = import_module(f"django_asgiserve.upstream.{name}")
    if not installed(module):
        pytest.skip(f"{module.UPSTREAM.project} is not installed")
    assert dict(module.probe().missing) == {}


@pytest.mark.parametrize("name", upstream.MODULES)
def test_the_installed_release_is_in_the_tested_range(name):
    """A newer release than the newest tested fails here: once the suite passes on it, its
    number goes in the module's ``UPSTREAM`` and on docs/versions.md."""
    module = import_module(f"django_asgiserve.upstream.{name}")
    if not installed(module):
        pytest.skip(f"{module.UPSTREAM.project} is not installed")
    found = Version(version(module.UPSTREAM.distribution))
    newest = Version(module.UPSTREAM.newest)
    assert Version(module.UPSTREAM.lowest) <= found, found
    assert found.release[: len(newest.release)] <= newest.release, (
        f"{module.UPSTREAM.project} {found} is newer than the newest tested ({newest})"
    )


def test_the_declared_floors_are_the_lowest_tested():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + [
        requirement for extra in project["optional-dependencies"].values() for requirement in extra
    ]
    floors = {}
    for requirement in requirements:
        if match := re.fullmatch(r"([\w.-]+)(\[[^\]]*\])?>=([\w.]+)", requirement):
            floors.setdefault(match[1].lower(), set()).add(match[3])
    for module in modules():
        declared = floors.get(module.UPSTREAM.distribution.lower())
        if declared is not None:
            assert module.UPSTREAM.lowest in declared, (module.UPSTREAM, declared)


@pytest.mark.parametrize("name", upstream.MODULES)
def test_each_reliance_is_named_in_the_modules_docstring_and_on_the_docs_page(name):
    module = import_module(f"django_asgiserve.upstream.{name}")
    page = VERSIONS_PAGE.read_text()
    for reliance in reliances(module):
        # The names it relies on: the dotted or called names in the reliance's name.
        names = re.findall(r"[A-Za-z_][\w.]*(?:\(\))?", reliance.name)
        relied = [n.rstrip("()").rpartition(".")[2] for n in names if "_" in n or "." in n]
        assert relied, reliance
        for each in relied:
            assert each in module.__doc__, (name, each)
            assert each in page, (name, each)
        assert reliance.since in module.__doc__, (name, reliance.since)
    assert f"| {module.UPSTREAM.lowest} |" in page and f"| {module.UPSTREAM.newest} |" in page


def test_messages_refuse_warn_or_note_as_the_fallback_says(monkeypatch):
    """E030 names the installed version, the tested range and a pip command; W030 the fallback;
    I030 shows at verbosity 2 only."""
    from django_asgiserve.upstream.probing import Findings

    refused = Reliance("a", since="1", why="needed")
    degraded = Reliance("b", since="1", why="nicer", fallback="served plainly")
    noted = Reliance("c", since="1", why="tidier", fallback="the same", loses=False)
    findings = Findings(
        django_internals.UPSTREAM, {refused: "not found", degraded: "not found", noted: "x"}
    )
    django_version = version("django")
    by_level = {m.id: m for m in findings.messages(verbosity=2)}
    assert set(by_level) == {"asgiserve.E030", "asgiserve.W030", "asgiserve.I030"}
    error = by_level["asgiserve.E030"]
    assert f"Django {django_version} lacks a (not found)" in error.msg
    assert "asgiserve cannot serve without it, and is tested with Django 5.2 to " in error.msg
    newest = django_internals.UPSTREAM.newest
    assert error.hint == f'Install a tested version: pip install "django>=5.2,<={newest}"'
    assert "Instead, served plainly" in by_level["asgiserve.W030"].msg
    assert {m.id for m in findings.messages(verbosity=1)} == {"asgiserve.E030", "asgiserve.W030"}
    assert findings.refused and "lacks a" in findings.refusal()


def test_without_djangos_error_files_asgiserve_records_them(monkeypatch, tmp_path):
    from django.utils import autoreload

    monkeypatch.delattr(autoreload, "_error_files")
    monkeypatch.delattr(autoreload, "check_errors")
    monkeypatch.setattr(django_internals, "_own_error_files", [])
    assert [m.id for m in django_internals.probe().messages(verbosity=2)] == ["asgiserve.I030"]
    assert django_internals.probe().messages(verbosity=1) == []
    broken = tmp_path / "broken_module_for_asgiserve.py"
    broken.write_text("def oops(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def load() -> None:
        import_module("broken_module_for_asgiserve")

    with pytest.raises(SyntaxError):
        django_internals.check_errors(load)()
    sys.modules.pop("broken_module_for_asgiserve", None)
    assert django_internals.error_files() == [str(broken)]


def test_without_handler_class_request_finished_is_sent_by_none(monkeypatch):
    from django.http import HttpResponse, HttpResponseBase

    def close(self) -> None:  # a close() that no longer reads _handler_class
        return None

    monkeypatch.setattr(HttpResponseBase, "close", close)
    assert [m.id for m in django_internals.probe().messages(verbosity=2)] == ["asgiserve.I030"]
    response = HttpResponse()
    django_internals.set_handler_class(response, object)
    assert response._handler_class is None  # Django's own default, left alone


def test_without_gunicorns_settings_table_the_grace_is_whole_seconds(monkeypatch):
    pytest.importorskip("gunicorn")
    from gunicorn.config import Config

    from django_asgiserve.upstream import gunicorn as gunicorn_internals

    class WithoutTable(Config):
        def __getattribute__(self, name):
            if name == "settings":
                raise AttributeError(name)
            return super().__getattribute__(name)

    monkeypatch.setattr("gunicorn.config.Config", WithoutTable)
    findings = gunicorn_internals.probe()
    assert [m.id for m in findings.messages(verbosity=2)] == ["asgiserve.I030"]
    assert findings.messages(verbosity=1) == []
    cfg = Config()
    gunicorn_internals.set_seconds(cfg, "graceful_timeout", 1.4)
    assert cfg.graceful_timeout == 2


def test_without_the_sigquit_hook_a_gunicorn_worker_keeps_the_default(monkeypatch):
    pytest.importorskip("uvicorn_worker")
    from uvicorn_worker import UvicornWorker

    from django_asgiserve.upstream import uvicorn_worker as worker_internals

    monkeypatch.delattr(UvicornWorker, "_install_sigquit_handler")
    findings = worker_internals.probe()
    assert [m.id for m in findings.messages(verbosity=2)] == ["asgiserve.I030"]
    worker_internals.install_sigquit_handler(object())  # nothing to install, nothing raised


def test_without_h2streams_request_line_http2_bodies_go_daphnes_way(monkeypatch):
    if importlib.util.find_spec("twisted") is None:
        pytest.skip("Twisted is not installed")
    from django_asgiserve.upstream import probing
    from django_asgiserve.upstream import twisted as twisted_internals

    real = probing.unexecuted_code

    def renamed(module: str):
        code = real(module)
        if module != "twisted.web._http2":
            return code
        source = importlib.util.find_spec(module).loader.get_source(module)
        source = source.replace("self.command", "self.method").replace("self.path", "self.target")
        return compile(source, code.co_filename, "exec")

    monkeypatch.setattr(twisted_internals, "unexecuted_code", renamed)
    findings = twisted_internals.probe()
    assert [m.id for m in findings.messages()] == ["asgiserve.W030"]
    assert "H2Stream.command and path" in findings.messages()[0].msg

    class Stream:
        command, path = b"POST", b"/upload/"

    assert twisted_internals.stream_request_line(Stream()) is None
