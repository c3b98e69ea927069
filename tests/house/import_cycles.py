#!/usr/bin/env python3
"""Import cycles among a package's own modules, counting imports made anywhere in a file
(inside functions too) but not those under ``if TYPE_CHECKING:``.

    python tests/house/import_cycles.py [PACKAGE_DIR]     (default: memos_cli)

Vendored from the project's shared tools (../shared/tools/import_cycles.py).

Prints each cycle (a strongly connected component of two or more modules) with the imports that
tie it, and exits 1 when there is one. A deferred import inside a function still makes the
importing module depend on the imported one: it hides a cycle from the interpreter, not from
the design.
"""
import ast
import sys
from pathlib import Path


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def type_checking_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                for n in ast.walk(sub):
                    if hasattr(n, "lineno"):
                        lines.add(n.lineno)
    return lines


def edges(root: Path) -> dict[str, dict[str, list[str]]]:
    pkg = root.name
    files = {module_name(root, p): p for p in root.rglob("*.py")}
    graph: dict[str, dict[str, list[str]]] = {m: {} for m in files}
    for mod, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = type_checking_lines(tree)
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            targets: list[tuple[str, str]] = []
            if isinstance(node, ast.Import):
                targets = [(a.name, a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.append((sub if sub in files else base, a.name))
            for target, name in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != mod and target.split(".")[0] == pkg:
                    graph[mod].setdefault(target, []).append(name)
    return graph


def cycles(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "memos_cli").resolve()
    graph = edges(root)
    found = cycles(graph)
    for comp in found:
        members = set(comp)
        print(f"cycle of {len(comp)} modules: {', '.join(comp)}")
        for a in comp:
            for b, names in sorted(graph[a].items()):
                if b in members:
                    print(f"  {a} -> {b}: {', '.join(sorted(set(names)))}")
    if not found:
        print(f"no import cycles among {len(graph)} modules of {root.name}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
