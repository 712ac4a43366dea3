"""``scripts/check_sizes.py`` on small packages written for each test: a module over 300 lines
and a class over 200 (its decorators included) are listed, and the exit status says whether any
was; right at the limits nothing is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.server import REPO

CHECK = REPO / "scripts" / "check_sizes.py"


def lines(count: int, first: str = "") -> str:
    """A module of ``count`` physical lines, starting with ``first`` (if given)."""
    head = [first] if first else []
    return "\n".join([*head, *(f"X{n} = {n}" for n in range(count - len(head)))]) + "\n"


def klass(count: int, decorated: bool = False) -> str:
    """A class statement spanning ``count`` lines (its decorator being one of them)."""
    head = ["@decorate"] if decorated else []
    head.append("class Big:")
    return "\n".join([*head, *(f"    a{n} = {n}" for n in range(count - len(head)))]) + "\n"


def check(package: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), str(package)], capture_output=True, text=True, check=False
    )


def write(root: Path, files: dict[str, str]) -> Path:
    package = root / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name, source in files.items():
        (package / name).write_text(source)
    return package


def test_a_long_module_and_a_long_class_are_listed(tmp_path):
    decorator = "def decorate(cls):\n    return cls\n"
    package = write(
        tmp_path,
        {
            "long.py": lines(301),
            "wide.py": decorator + "\n" + klass(201, decorated=True),
            "nested.py": "class Outer:\n"
            + "".join(f"    {line}\n" for line in klass(201).split("\n")[:-1]),
        },
    )
    result = check(package)
    assert result.returncode == 1, result.stdout
    assert "pkg/long.py:1: module has 301 lines (at most 300)" in result.stdout
    assert "pkg/wide.py:4: class Big has 201 lines (at most 200)" in result.stdout
    assert "pkg/nested.py:1: class Outer has 202 lines (at most 200)" in result.stdout
    assert "pkg/nested.py:2: class Big has 201 lines (at most 200)" in result.stdout
    assert "4 modules or classes too long" in result.stdout


def test_right_at_the_limits_nothing_is_listed(tmp_path):
    package = write(
        tmp_path,
        {"full.py": lines(300), "class_full.py": klass(200), "empty.py": ""},
    )
    result = check(package)
    assert result.returncode == 0, result.stdout
    assert result.stdout == (
        "pkg: 0 modules or classes too long (at most 300 lines per module, 200 per class)\n"
    )
