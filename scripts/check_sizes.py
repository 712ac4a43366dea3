"""Fail when a module or a class of the django_asgiserve package (or the package given) is too
long: more than 300 lines in a module, more than 200 in a class.

A module's size is its file's physical lines; a class's is the span of its statement, from its
first decorator (or ``class``) to its last line, nested classes included in it and checked on
their own as well. Each offender is listed as ``path:line: what has N lines (at most M)``, the
longest first; the exit status is 1 when there is any.

    python scripts/check_sizes.py [PACKAGE_DIR]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "django_asgiserve"
MAX_MODULE_LINES = 300
MAX_CLASS_LINES = 200


def offences(path: Path, shown_as: str) -> list[tuple[int, str]]:
    """(lines, message) for the module at ``path`` and each of its classes over the limits."""
    source = path.read_text()
    found = []
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(
            (lines, f"{shown_as}:1: module has {lines} lines (at most {MAX_MODULE_LINES})")
        )
    for node in ast.walk(ast.parse(source, str(path))):
        if not isinstance(node, ast.ClassDef):
            continue
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        span = (node.end_lineno or node.lineno) - first + 1
        if span > MAX_CLASS_LINES:
            found.append(
                (
                    span,
                    f"{shown_as}:{first}: class {node.name} has {span} lines "
                    f"(at most {MAX_CLASS_LINES})",
                )
            )
    return found


def main(argv: list[str]) -> int:
    package = Path(argv[0]).resolve() if argv else PACKAGE
    found = []
    for path in sorted(package.rglob("*.py")):
        found += offences(path, str(path.relative_to(package.parent)))
    for _lines, message in sorted(found, key=lambda offence: -offence[0]):
        print(message)
    print(
        f"{package.name}: {len(found)} modules or classes too long "
        f"(at most {MAX_MODULE_LINES} lines per module, {MAX_CLASS_LINES} per class)"
    )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
