"""Fail when a module of the package is longer than 300 lines or a class longer than 200.

The project's bound on size: one module per responsibility, short. Lines are counted as the file
has them (docstrings and comments included); a class from its ``class`` line (or its first
decorator) to its last line.

    python scripts/check_sizes.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "django_asgiserve"
MAX_MODULE_LINES = 300
MAX_CLASS_LINES = 200


def oversized(path: Path) -> list[str]:
    """One line per bound ``path`` exceeds."""
    text = path.read_text()
    name = path.relative_to(ROOT)
    found = []
    lines = len(text.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{name}: {lines} lines (at most {MAX_MODULE_LINES})")
    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            size = (node.end_lineno or node.lineno) - first + 1
            if size > MAX_CLASS_LINES:
                found.append(
                    f"{name}:{node.lineno}: class {node.name}: {size} lines "
                    f"(at most {MAX_CLASS_LINES})"
                )
    return found


def main() -> int:
    found = [line for path in sorted((ROOT / PACKAGE).rglob("*.py")) for line in oversized(path)]
    for line in found:
        print(line)
    print(f"{len(found)} modules or classes over the bounds")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
