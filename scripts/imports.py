"""Print which package imports which: the code's map, read from its own import statements.

    python scripts/imports.py            # packages (shared/run, shared/jsonl, workers, ...)
    python scripts/imports.py --modules  # every module
    python scripts/imports.py --check    # exit 1 on a cycle between packages or modules

A "package" is a folder of modules (``shared/run``) or a module at the root of ``shared/``
(``shared/settings``). Imports inside functions count too (they still tie the code
together); ``TYPE_CHECKING`` imports do not. Only the project's own packages are shown.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = ("shared", "workers", "emulator")


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    """``shared.run.store`` -> ``shared/run``; ``shared.settings`` -> ``shared/settings``;
    ``workers.tasks.run`` -> ``workers/tasks``; ``emulator.app`` -> ``emulator``."""
    parts = module.split(".")
    if parts[0] == "emulator":
        return "emulator"
    if parts[0] == "workers":
        return "workers/tasks" if len(parts) > 1 and parts[1] == "tasks" else "workers"
    return "/".join(parts[:2])


def imports_of(path: Path, module: str, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(child) for child in ast.walk(node))
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: -node.level or None]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # a submodule if there is one, else the module itself
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in modules else base)
    return {name for name in found if name.split(".")[0] in TOP}


def graph(by_module: bool, root: Path = ROOT) -> dict[str, set[str]]:
    modules = {
        module_name(path, root): path
        for top in TOP
        for path in sorted((root / top).rglob("*.py"))
    }
    edges: dict[str, set[str]] = defaultdict(set)
    for module, path in modules.items():
        source = module if by_module else package_of(module)
        edges.setdefault(source, set())
        for imported in imports_of(path, module, modules):
            name = imported
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if not name:
                continue
            target = name if by_module else package_of(name)
            if target != source:
                edges[source].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
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

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="modules instead of packages")
    parser.add_argument("--check", action="store_true", help="exit 1 on an import cycle")
    parser.add_argument("--root", type=Path, default=ROOT,
                        help="another checkout to read (default: this one)")
    args = parser.parse_args()
    edges = graph(args.modules, args.root.resolve())
    for source in sorted(edges):
        targets = ", ".join(sorted(edges[source])) or "-"
        print(f"{source:28} -> {targets}")
    loops = cycles(edges)
    for loop in loops:
        print("cycle: " + " <-> ".join(loop))
    if not loops:
        print("no cycles")
    return 1 if args.check and loops else 0


if __name__ == "__main__":
    raise SystemExit(main())
