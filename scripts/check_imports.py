"""Fail on any import cycle inside the django_asgiserve package (or the package given).

One graph over the package's modules, from their source (nothing is imported), with every
import in it, of three kinds:

* ``->``  at module level: runs when the module is imported;
* ``~>``  inside a function or method: runs when that is called;
* ``..>`` under ``if TYPE_CHECKING:``: never runs, but ties the two modules' designs together
  all the same (each needs the other to be understood, typed or moved).

An import names every package on the way to the module it imports: ``from pkg import mod`` and
``import pkg.mod`` import ``pkg`` (its ``__init__``) as well as ``pkg.mod``, since Python runs
``pkg/__init__.py`` first. (A module is not counted as importing its own packages unless it
names them.) Each cycle is printed as a chain of imports, one per module it goes through, and
the exit status is 1 when there is any.

    python scripts/check_imports.py [PACKAGE_DIR]
"""

from __future__ import annotations

import ast
import sys
from collections import Counter, deque
from itertools import pairwise
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "django_asgiserve"

#: The kinds of import, strongest first: an edge is shown as its strongest import.
AT_IMPORT, IN_FUNCTION, TYPE_ONLY = "->", "~>", "..>"
KINDS = (AT_IMPORT, IN_FUNCTION, TYPE_ONLY)
LEGEND = "-> at module level, ~> inside a function, ..> under if TYPE_CHECKING"

#: Module -> imported module -> the kind of import.
Graph = dict[str, dict[str, str]]


def module_names(package: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package rooted at ``package``."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def with_packages(name: str, modules: set[str]) -> set[str]:
    """``name`` and every package on the way to it, as far as they are modules we know."""
    parts = name.split(".")
    return {".".join(parts[:n]) for n in range(1, len(parts) + 1)} & modules


def imported(
    node: ast.Import | ast.ImportFrom, here: str, is_package: bool, modules: set[str]
) -> set[str]:
    """The package's modules one import statement in module ``here`` imports."""
    if isinstance(node, ast.Import):
        return {found for alias in node.names for found in with_packages(alias.name, modules)}
    base = node.module or ""
    if node.level:
        package = here.split(".")
        package = package[: len(package) - node.level + (1 if is_package else 0)]
        base = ".".join([*package, base] if base else package)
    found = with_packages(base, modules)
    for alias in node.names:
        found |= with_packages(f"{base}.{alias.name}", modules)
    return found


def edges(name: str, path: Path, modules: set[str]) -> dict[str, str]:
    """The modules ``name`` imports, each with the strongest kind of import of it."""
    kinds: dict[str, str] = {}
    is_package = path.name == "__init__.py"

    def handle(node: ast.AST, kind: str) -> None:
        if isinstance(node, ast.If) and is_type_checking(node):
            for statement in node.body:
                handle(statement, TYPE_ONLY)
            for statement in node.orelse:
                handle(statement, kind)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            for target in imported(node, name, is_package, modules) - {name}:
                if target not in kinds or KINDS.index(kind) < KINDS.index(kinds[target]):
                    kinds[target] = kind
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            kind = IN_FUNCTION if kind == AT_IMPORT else kind
        for child in ast.iter_child_nodes(node):
            handle(child, kind)

    handle(ast.parse(path.read_text(), str(path)), AT_IMPORT)
    return kinds


def components(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
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
    return sorted(found)


def shortest_cycle(graph: Graph, start: str, within: set[str]) -> list[str]:
    """The shortest chain of imports from ``start`` back to it, inside ``within``."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for target in sorted(graph[node]):
            if target not in within:
                continue
            if target == start:
                chain = [node]
                while chain[-1] != start:
                    chain.append(came_from[chain[-1]])
                return [start, *reversed(chain[:-1]), start]
            if target not in came_from:
                came_from[target] = node
                queue.append(target)
    raise AssertionError(f"{start} is in no cycle")


def cycles(graph: Graph) -> list[tuple[list[str], list[list[str]]]]:
    """Each group of modules that import each other, with the shortest chain of imports
    through each of its modules (each chain once)."""
    found = []
    for component in components(graph):
        chains: list[list[str]] = []
        for start in component:
            chain = shortest_cycle(graph, start, set(component))
            steps = set(pairwise(chain))
            if not any(steps == set(pairwise(c)) for c in chains):
                chains.append(chain)
        found.append((component, chains))
    return found


def chain_text(graph: Graph, chain: list[str], prefix: str) -> str:
    """``a -> b ..> a``, without the package's own name in front of each module."""

    def short(name: str) -> str:
        return name.removeprefix(prefix) or name

    text = short(chain[0])
    for here, there in pairwise(chain):
        text += f" {graph[here][there]} {short(there)}"
    return text


def graph_of(package: Path) -> Graph:
    names = module_names(package)
    modules = set(names)
    return {name: edges(name, path, modules) for name, path in names.items()}


def main(argv: list[str]) -> int:
    package = Path(argv[0]).resolve() if argv else PACKAGE
    graph = graph_of(package)
    counts = Counter(kind for targets in graph.values() for kind in targets.values())
    found = cycles(graph)
    prefix = f"{package.name}."
    print(
        f"{package.name}: {len(graph)} modules, {sum(counts.values())} imports "
        f"({counts[AT_IMPORT]} at module level, {counts[IN_FUNCTION]} inside functions, "
        f"{counts[TYPE_ONLY]} under TYPE_CHECKING), {len(found)} import cycles"
    )
    for number, (component, chains) in enumerate(found, 1):
        members = ", ".join(name.removeprefix(prefix) for name in component)
        print(f"cycle {number}, among {members}:")
        for chain in chains:
            print("  " + chain_text(graph, chain, prefix))
    if found:
        print(f"({LEGEND})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
