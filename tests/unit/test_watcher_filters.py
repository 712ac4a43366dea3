"""What the supervisor's watcher leaves out: editor droppings, tool and virtualenv trees,
excluded directories and ``WATCH_IGNORE`` patterns (in process, on a real directory tree)."""

from __future__ import annotations

from pathlib import Path

import pytest

from django_asgiserve.reload import watcher


@pytest.mark.parametrize(
    ("name", "ignored"),
    [
        ("views.pyc", True),
        (".views.py.swp", True),
        ("views.py~", True),
        (".#views.py", True),
        ("#views.py#", True),
        ("4913", True),
        ("upload.tmp", True),
        ("views.py", False),
        ("page.html", False),
    ],
)
def test_editor_droppings_are_ignored(name: str, ignored: bool) -> None:
    assert watcher.is_ignored(Path("/p") / name, watcher.IGNORED_FILE_PATTERNS) is ignored


def test_ignore_patterns_match_names_and_whole_paths() -> None:
    assert watcher.is_ignored(Path("/p/build/out.js"), ["*/build/*"])
    assert watcher.is_ignored(Path("/p/notes.md"), ["*.md"])
    assert not watcher.is_ignored(Path("/p/views.py"), ["*.md"])


@pytest.mark.parametrize(
    "name", [".git", "node_modules", "__pycache__", ".venv", "site-packages", "pkg.egg-info"]
)
def test_tool_directories_are_skipped(name: str) -> None:
    assert watcher.skipped(Path("/p") / name, ())


def test_watched_directories_leave_out_excluded_trees(tmp_path: Path) -> None:
    for directory in ["app/templates", ".git/objects", "media/uploads", "env2/lib", "docs"]:
        (tmp_path / directory).mkdir(parents=True)
    (tmp_path / "env2" / "pyvenv.cfg").write_text("home = /usr\n")
    found = watcher.watched_directories([tmp_path], [tmp_path / "media"], ["docs"])
    names = {str(p.relative_to(tmp_path)) for p in found}
    assert names == {".", "app", "app/templates"}


def test_files_in_lists_files_only(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("")
    assert watcher.files_in([tmp_path, tmp_path / "missing"]) == {tmp_path / "a.py"}
