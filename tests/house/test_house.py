"""The house rules a green suite would not otherwise see (#29): data flows one way (no import
cycles among memos_cli's modules, imports inside functions counted), and the light commands
stay light (neither torch nor transformers imported)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.house.import_cycles import cycles, edges

PACKAGE = Path(__file__).resolve().parents[2] / "memos_cli"

#: Runs the CLI in this process, then says which heavy libraries it imported.
PROBE = """
import json, sys
from memos_cli.cli.app import main
sys.argv = ["memos", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as e:
    code = e.code
else:
    code = 0
heavy = sorted(m for m in ("torch", "transformers", "peft", "lancedb", "presidio_analyzer")
               if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def test_no_import_cycles() -> None:
    graph = edges(PACKAGE)
    found = cycles(graph)
    shown = ["; ".join(f"{a} -> {b}" for a in comp for b in graph[a] if b in comp)
             for comp in found]
    assert found == [], "import cycles:\n" + "\n".join(shown)
    assert len(graph) > 100  # the walk saw the package, not an empty directory


#: docs/architecture.md's floors: a package (or top-level module) imports from its own floor
#: and those below.
FLOORS = {1: ["errors", "digest", "strictjson", "principal", "memory", "validity", "version",
              "config", "lockfile", "pausepoints", "atomic", "localfiles", "units", "progress"],
          2: ["cube", "sources", "objstore"],
          3: ["models", "governance"],
          4: ["readers", "tiers", "lifecycle"],
          5: ["vault", "scheduler", "memstore", "batch"],
          6: ["api", "evaluation", "ui"],
          7: ["cli", "__main__", "memos_cli"]}
#: Upward imports that remain (docs/architecture.md, "Known exceptions"); the list may only
#: shrink.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def test_imports_point_down_the_floors() -> None:
    floor = {room: n for n, rooms in FLOORS.items() for room in rooms}
    graph = edges(PACKAGE)

    def room(module: str) -> str:
        parts = module.split(".")
        return parts[1] if len(parts) > 1 else parts[0]

    unplaced = sorted({room(m) for m in graph} - set(floor))
    assert unplaced == [], f"give these a floor in docs/architecture.md and here: {unplaced}"
    upward = {(a, b) for a, targets in graph.items() for b in targets
              if floor[room(b)] > floor[room(a)]}
    assert upward - KNOWN_UPWARD == set(), "imports that point up a floor"
    assert KNOWN_UPWARD - upward == set(), "an exception is gone: remove it from the list"


#: Third-party libraries worth deferring: each takes seconds to import, or pulls in one that does.
HEAVY = ("torch", "transformers", "peft", "lancedb", "lance", "ray", "presidio_analyzer",
         "presidio_anonymizer", "onnxruntime", "onnx", "oras", "spacy", "boto3", "safetensors",
         "dateparser", "mcp", "uvicorn", "starlette", "jinja2")
#: Deferred imports of memos modules that are light, each with its reason (docs/architecture.md).
DEFERRED_LIGHT: set[tuple[str, str]] = set()


def _imports(path: Path) -> tuple[list[ast.ImportFrom | ast.Import], list[ast.ImportFrom]]:
    """(top-level imports, memos imports inside function bodies) of one file, leaving out
    those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top: list[ast.ImportFrom | ast.Import] = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            top.append(node)
        elif isinstance(node, ast.Try):
            top += [n for n in node.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    deferred = [n for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                for n in ast.walk(f) if isinstance(n, ast.ImportFrom)
                and (n.module or "").startswith("memos_cli")]
    return top, deferred


def test_deferred_imports_are_for_heavy_libraries_only() -> None:
    """An import inside a function is kept only where it keeps a light module light: its
    target imports torch, transformers, Lance, Ray, Presidio, ONNX Runtime or the like when it
    is loaded (found statically from the modules' top-level imports, packages' __init__ too)."""
    files = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(
        ".__init__"): p for p in PACKAGE.rglob("*.py")}
    direct: dict[str, set[str]] = {}
    for mod, path in files.items():
        top, _ = _imports(path)
        names: set[str] = set()
        for node in top:
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            else:
                base = node.module or ""
                names |= {base} | {f"{base}.{a.name}" for a in node.names}
        parents = {".".join(mod.split(".")[:i]) for i in range(1, mod.count(".") + 1)}
        direct[mod] = {n for n in names | parents if n in files or
                       n.split(".")[0] in HEAVY}
    heavy: set[str] = set()
    changed = True
    while changed:
        changed = False
        for mod, names in direct.items():
            if mod not in heavy and any(n.split(".")[0] in HEAVY or n in heavy for n in names):
                heavy.add(mod)
                changed = True
    light_deferred = []
    for mod, path in files.items():
        for node in _imports(path)[1]:
            base = node.module or ""
            targets = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in files}
            if not (targets or {base}) & heavy and (mod, base) not in DEFERRED_LIGHT:
                light_deferred.append(f"{mod}:{node.lineno} {ast.unparse(node)}")
    assert light_deferred == [], "import these at the top (their targets are light):\n" + \
        "\n".join(light_deferred)
    assert {"memos_cli.tiers.kv", "memos_cli.tiers.rope"} <= heavy  # the walk works
    assert "memos_cli.cube.layout" not in heavy and "memos_cli.api" not in heavy


def test_the_cycle_check_finds_a_deferred_import(tmp_path: Path) -> None:
    """The check counts an import inside a function body, and ignores TYPE_CHECKING ones."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.b import x\n")
    (pkg / "b.py").write_text("x = 1\n\ndef f():\n    from pkg.a import y\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from pkg.a import y\n")
    assert cycles(edges(pkg)) == [["pkg.a", "pkg.b"]]


def _run(args: list[str]) -> tuple[dict, float]:
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True,
                          text=True, env=env, timeout=300)
    wall = time.perf_counter() - t0
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), (args, proc.stdout[-2000:], proc.stderr[-2000:])
    return report, wall


@pytest.mark.parametrize("command", ["help", "verify", "inspect", "search"])
def test_light_commands_import_neither_torch_nor_transformers(command: str,
                                                              packed_cube: Path) -> None:
    args = {"help": ["--help"], "verify": ["verify", str(packed_cube)],
            "inspect": ["inspect", str(packed_cube)],
            "search": ["search", str(packed_cube), "budget cap", "-k", "3"]}[command]
    if command == "search":
        _run(args)  # the first search of a MEMOS_HOME makes the ONNX export (with torch)
    report, wall = _run(args)
    assert report["heavy"] == [], f"memos {' '.join(args[:1])} imported {report['heavy']} " \
                                  f"({wall:.2f} s)"


def test_the_library_entry_point_is_light() -> None:
    """`import memos_cli.api` loads neither torch nor transformers: the embedder and the model
    load on a Session's first use."""
    code = ("import sys, memos_cli.api\n"
            "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=120, check=True).stdout.strip()
    assert out == "[]"
