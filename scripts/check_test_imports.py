"""Fail if a test module imports from another test module.

Shared test code lives in ``tests/conftest.py`` (fixtures) and ``tests/helpers/`` (everything
else); a ``tests/**/test_*.py`` that imports ``tests.<...>.test_*`` or ``.test_*`` couples two
test files, so moving or renaming one breaks the other. Run it as
``python scripts/check_test_imports.py`` (exit 1 and one line per offending import) or through
``tests/unit/test_test_imports.py``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"


def is_test_module(dotted: str) -> bool:
    return any(part.startswith("test_") for part in dotted.split("."))


def test_module_imports(path: Path) -> list[str]:
    """``path:line: import`` for each import of a test module in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names if is_test_module(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if is_test_module(module):
                names = [f"{'.' * node.level}{module}"]
            else:
                # ``from . import test_x`` and ``from tests.e2e import test_x``
                names = [alias.name for alias in node.names if alias.name.startswith("test_")]
        else:
            continue
        found += [f"{path}:{node.lineno}: imports {name}" for name in names]
    return found


def offences(root: Path = TESTS) -> list[str]:
    return [line for path in sorted(root.rglob("test_*.py")) for line in test_module_imports(path)]


def main() -> int:
    found = offences()
    for line in found:
        print(line)
    if found:
        print("a test module imports another test module: move what they share to tests/helpers/")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
