"""What a worker answers about changed files, when the answer needs no module table and when
working it out fails (in process, with the worker's own reloader).

A module whose ``__spec__`` raises stands for any failure while the imported modules are looked
at: a change that is only data is judged without looking at them, so it cannot fail; any other
falls back to a reload and says why on the console.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from django_asgiserve.reload.autoreload import WorkerReloader


class UnreadableModule(types.ModuleType):
    @property  # type: ignore[misc]
    def __spec__(self) -> None:  # type: ignore[override]
        raise RuntimeError("this module's spec cannot be read")


@pytest.fixture
def unreadable_module() -> Iterator[None]:
    """Looking at every imported module raises while this fixture is active."""
    name = "asgiserve_test_unreadable_module"
    sys.modules[name] = UnreadableModule(name)
    try:
        yield
    finally:
        del sys.modules[name]


def reloader() -> WorkerReloader:
    return WorkerReloader(broken=False, cold=False, learned=list)


DATA_FILES = [
    "toolbar-cache/0f1e2d3c4b5a.djcache",
    "logs/server.log",
    "db.sqlite3",
    "db.sqlite3-journal",
    "db.sqlite3-wal",
    "uploads/photo.jpeg",
    "notes",
]


def test_data_files_are_nothing_to_do_without_a_look_at_the_modules(
    unreadable_module, tmp_path, capfd
):
    paths = [str(tmp_path / name) for name in DATA_FILES]
    assert reloader().classify(paths) == ("none", [])
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("name", ["views.py", "module.pyc", "fast.cpython-311-x86_64-linux-gnu.so"])
def test_a_failed_judgement_is_a_reload_said_with_its_traceback(
    unreadable_module, tmp_path, capfd, name
):
    changed = [str(tmp_path / name), str(tmp_path / "db.sqlite3")]
    assert reloader().classify(changed) == ("reload", changed)
    err = capfd.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "RuntimeError: this module's spec cannot be read" in err
    assert f"Could not tell what the change to {changed[0]}" in err
    assert "reloading to be safe" in err


def test_watched_data_files_are_judged(unreadable_module, tmp_path, capfd):
    """A file under a directory Django's receivers watch (translations here) is not dismissed
    for its suffix: it is judged like a module, so this one fails and reloads."""
    watching = reloader()
    watching.watch_dir(tmp_path / "locale", "**/*.mo")
    catalog = str(tmp_path / "locale" / "fr" / "LC_MESSAGES" / "django.mo")
    assert watching.classify([catalog]) == ("reload", [catalog])
    assert "reloading to be safe" in capfd.readouterr().err


def test_a_link_to_a_module_is_judged(unreadable_module, tmp_path, capfd):
    module = tmp_path / "real_module.py"
    module.write_text("")
    link = tmp_path / "link_without_suffix"
    link.symlink_to(module)
    assert reloader().classify([str(link)]) == ("reload", [str(link)])


def test_data_files_are_nothing_to_do(tmp_path):
    paths = [str(tmp_path / name) for name in DATA_FILES]
    assert reloader().classify(paths) == ("none", [])


def test_an_imported_module_is_a_reload(tmp_path):
    source = Path(types.__file__).resolve()
    assert reloader().classify([str(source)]) == ("reload", [str(source)])
