"""``scripts/check_imports.py`` on small packages written for each test: it finds a cycle through
an ``if TYPE_CHECKING:`` import and one through a package's ``__init__``, prints each as a chain,
exits 1 on a cycle and 0 without one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers.server import REPO

CHECK = REPO / "scripts" / "check_imports.py"


def write_package(root: Path, files: dict[str, str]) -> Path:
    """Package ``pkg`` under ``root`` with ``files`` (path -> source); every folder a package."""
    package = root / "pkg"
    for name, source in {"__init__.py": "", **files}.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        init = path.parent / "__init__.py"
        if not init.exists():
            init.write_text("")
        path.write_text(source)
    return package


def check(package: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), str(package)], capture_output=True, text=True, check=False
    )


def test_a_cycle_through_a_type_checking_import(tmp_path):
    package = write_package(
        tmp_path,
        {
            "pool.py": "from pkg.worker import run\n",
            "worker.py": (
                "from typing import TYPE_CHECKING\n\n"
                "if TYPE_CHECKING:\n    from pkg.pool import Pool\n\n"
                "def run():\n    pass\n"
            ),
        },
    )
    result = check(package)
    assert result.returncode == 1, result.stdout
    assert "1 import cycles" in result.stdout
    assert "  pool -> worker ..> pool\n" in result.stdout, result.stdout


def test_a_cycle_through_a_package_init(tmp_path):
    """``from pkg.sub import b`` runs ``pkg/sub/__init__.py``, which imports ``a`` back."""
    package = write_package(
        tmp_path,
        {
            "a.py": "from pkg.sub import b\n",
            "sub/__init__.py": "from pkg.a import *\n",
            "sub/b.py": "VALUE = 1\n",
        },
    )
    result = check(package)
    assert result.returncode == 1, result.stdout
    assert "  a -> sub -> a\n" in result.stdout, result.stdout


def test_a_cycle_through_relative_imports_inside_functions(tmp_path):
    package = write_package(
        tmp_path,
        {
            "sub/__init__.py": "def late():\n    from . import c\n",
            "sub/c.py": "from ..sub import d\n",
            "sub/d.py": "X = 1\n",
        },
    )
    result = check(package)
    assert result.returncode == 1, result.stdout
    assert "  sub ~> sub.c -> sub\n" in result.stdout, result.stdout


def test_no_cycle(tmp_path):
    package = write_package(
        tmp_path,
        {
            "a.py": (
                "from typing import TYPE_CHECKING\n\nfrom pkg.sub import b\n\n"
                "if TYPE_CHECKING:\n    from pkg.c import C\n"
            ),
            "sub/b.py": "import pkg.c\n",
            "c.py": "def f():\n    import json\n\nclass C:\n    pass\n",
        },
    )
    result = check(package)
    assert result.returncode == 0, result.stdout
    assert "0 import cycles" in result.stdout, result.stdout
    # a: pkg, sub, sub.b and (typing only) c; sub.b: pkg, c
    assert "6 imports (5 at module level, 0 inside functions, 1 under TYPE_CHECKING)" in (
        result.stdout
    )
