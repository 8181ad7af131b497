"""Draw sonotype's internal import graph from the code and count what issue 21 measures.

Counts every ``import`` of a ``sonotype`` module, at module level or inside a function,
resolves relative imports, and reports: modules, internal imports (and how many sit inside
functions), import circles (strongly connected components of more than one module, counting
function-level imports), cross-module imports of ``_private`` names, and module-level
``__getattr__`` definitions. Run: ``python scripts/import_graph.py [src/sonotype]``.
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".")
    if not is_pkg:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def scan(root: Path) -> dict:
    modules = {}
    for path in sorted(root.rglob("*.py")):
        modules[module_name(path, root)] = path
    names = set(modules)
    edges: dict[str, set[str]] = {m: set() for m in modules}
    total = in_func = 0
    private: list[str] = []
    getattr_mods: list[str] = []
    for mod, path in modules.items():
        tree = ast.parse(path.read_text())
        is_pkg = path.name == "__init__.py"
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
                getattr_mods.append(mod)
        func_nodes = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Import | ast.ImportFrom):
                        func_nodes.add(id(sub))
        for node in ast.walk(tree):
            targets: list[tuple[str, str | None]] = []
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve(mod, is_pkg, node)
                for a in node.names:
                    full = f"{base}.{a.name}"
                    targets.append((full, None) if full in names else (base, a.name))
            else:
                continue
            for target, attr in targets:
                if not target.startswith("sonotype"):
                    continue
                while target and target not in names:
                    target = target.rpartition(".")[0]
                if not target or target == mod:
                    continue
                total += 1
                if id(node) in func_nodes:
                    in_func += 1
                edges[mod].add(target)
                if attr and attr.startswith("_") and not attr.startswith("__"):
                    private.append(f"{mod} <- {target}.{attr}")
    # Tarjan's strongly connected components.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    sccs: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    return {
        "modules": len(modules),
        "internal_imports": total,
        "function_level_imports": in_func,
        "circles": len(sccs),
        "circle_members": sccs,
        "private_cross_imports": len(private),
        "private_examples": private[:50],
        "module_getattr": getattr_mods,
    }


if __name__ == "__main__":
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "src/sonotype")
    print(json.dumps(scan(root), indent=1))
