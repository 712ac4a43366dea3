"""Fail on any import cycle inside the django_asgiserve package.

Two graphs over the package's modules, from their source (nothing is imported):

* module level: imports that run when a module is imported (``if TYPE_CHECKING:`` blocks are
  left out: they never run);
* every level: those plus imports inside functions and methods.

A cycle in either fails. An edge goes to the module an import names (``from pkg import mod``
names ``pkg.mod`` when that is a module); the implicit import of a parent package is not an
edge, since a package's ``__init__`` that imports its submodules would otherwise close a loop
with each of them.

    python scripts/check_imports.py [--verbose]
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "django_asgiserve"

Graph = dict[str, set[str]]


def module_names() -> dict[str, Path]:
    names = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(node: ast.Import | ast.ImportFrom, here: str, modules: set[str]) -> set[str]:
    """The package modules one import statement names."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in modules}
    base = node.module or ""
    if node.level:
        package = here.split(".")
        package = package[: len(package) - node.level + (1 if here in PACKAGES else 0)]
        base = ".".join([*package, base] if base else package)
    found = set()
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        if candidate in modules:
            found.add(candidate)
        elif base in modules:
            found.add(base)
    return found


def edges(name: str, path: Path, modules: set[str]) -> tuple[set[str], set[str]]:
    """The modules ``name`` imports at module level, and inside functions."""
    top: set[str] = set()
    inner: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and is_type_checking(child):
                for other in child.orelse:
                    visit(other, in_function)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                (inner if in_function else top).update(imported(child, name, modules) - {name})
            function = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(child, in_function or function)

    visit(ast.parse(path.read_text(), str(path)), False)
    return top, inner


def cycles(graph: Graph) -> list[list[str]]:
    """One cycle through each strongly connected component that has one (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


PACKAGES = {
    ".".join(p.relative_to(ROOT).parent.parts) for p in (ROOT / PACKAGE).rglob("__init__.py")
}


def main() -> int:
    names = module_names()
    modules = set(names)
    module_level: Graph = {}
    every_level: Graph = {}
    for name, path in names.items():
        top, inner = edges(name, path, modules)
        module_level[name] = top
        every_level[name] = top | inner
    failed = False
    for label, graph in (("module-level", module_level), ("every-level", every_level)):
        found = cycles(graph)
        count = sum(len(targets) for targets in graph.values())
        print(f"{label}: {len(graph)} modules, {count} imports, {len(found)} cycles")
        for component in found:
            failed = True
            print("  cycle among: " + ", ".join(component))
            if "--verbose" in sys.argv:
                for member in component:
                    inside = sorted(graph[member] & set(component))
                    print(f"    {member} -> {', '.join(inside)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
