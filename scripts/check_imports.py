"""Find import circles among the project's modules (backend/ and blender_addon/).

    python scripts/check_imports.py [--packages] [--roots PKG,PKG] [ROOT]

Builds the module import graph from the source with `ast` (nothing is imported): every `import` and
`from ... import` anywhere in a module, including the lazy ones inside functions and under
`if TYPE_CHECKING:`, plus module paths written as strings (a command registry, a forkserver preload
list), which `importlib` turns into imports. `from pkg import name` counts as an import of `pkg.name`
when that is a module, else of `pkg`. A package's `__init__` is a module like any other; importing
`a.b.c` is an arrow to `a.b.c` only (Python runs the parents' `__init__` first, which is not a circle).

Prints every circle (its strongly connected set of modules and one cycle through it) and exits 1 if
there is any, else prints the module and arrow counts and exits 0. With --packages, the graph of
top-level rooms (`backend/engine`, `backend/model`, ..., `blender_addon/core`) is checked too, so an
arrow back up between rooms is reported even when no single module circle results from it.
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable
from pathlib import Path

ROOTS = ("backend", "blender_addon")


def module_names(root: Path, roots: tuple[str, ...] = ROOTS) -> dict[str, Path]:
    """Dotted name -> file for every .py module under the package folders `roots` of `root`."""
    modules: dict[str, Path] = {}
    for top in roots:
        for path in sorted((root / top).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """Absolute name of a (possibly relative) `from` target."""
    if level == 0:
        return target or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of `name` that is one of our modules (None: not ours)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Our modules that `module` imports, anywhere in its source."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        names: Iterable[str] = ()
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, is_package, node.level, node.module)
            # `from pkg import sub` imports the module pkg.sub when there is one
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in modules:
            names = [node.value]  # a module path given to importlib (registry, preload list)
        for name in names:
            target = _known(name, modules)
            if target is not None and target != module:
                found.add(target)
    return found


def import_graph(root: Path, roots: tuple[str, ...] = ROOTS) -> dict[str, set[str]]:
    """Module -> the modules it imports, for every module under `roots` of `root`."""
    modules = module_names(root, roots)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); components with more than one node, or a self-arrow."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    components.append(sorted(component))
    return components


def one_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A closed path through the component's first member (breadth-first, so a shortest one)."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*reversed(path), start]
                if child not in previous:
                    previous[child] = node
                    nxt.append(child)
        frontier = nxt
    return component


def room_of(module: str) -> str:
    """The top-level room of a module: `backend.engine.stream` -> `backend.engine`, `backend.cli` -> itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def room_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    rooms: dict[str, set[str]] = {}
    for module, targets in graph.items():
        rooms.setdefault(room_of(module), set()).update(room_of(t) for t in targets)
    for room, targets in rooms.items():
        targets.discard(room)
    return rooms


def report(graph: dict[str, set[str]], label: str) -> int:
    """Print the circles of `graph`; return how many there are."""
    components = strongly_connected(graph)
    for component in components:
        print(f"{label} circle: {' -> '.join(one_cycle(graph, component))}  (members: {', '.join(component)})")
    return len(components)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parents[1]),
                        help="repository root (default: this script's repository)")
    parser.add_argument("--packages", action="store_true", help="also check the graph of top-level rooms")
    parser.add_argument("--roots", default=",".join(ROOTS), metavar="PKG[,PKG]",
                        help=f"top-level packages to scan, comma-separated (default: {','.join(ROOTS)})")
    args = parser.parse_args(argv)
    roots = tuple(name for name in args.roots.split(",") if name)
    missing = [name for name in roots if not (Path(args.root) / name / "__init__.py").is_file()]
    if missing:
        parser.error(f"not a package folder of {args.root}: {', '.join(missing)}")
    graph = import_graph(Path(args.root), roots)
    circles = report(graph, "module")
    if args.packages:
        circles += report(room_graph(graph), "room")
    arrows = sum(len(t) for t in graph.values())
    if circles:
        print(f"{circles} import circle(s) among {len(graph)} modules ({arrows} arrows)")
        return 1
    print(f"no import circles among {len(graph)} modules ({arrows} arrows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
