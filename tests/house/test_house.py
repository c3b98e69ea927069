"""The house rules a green suite would not otherwise see (#29): data flows one way (no import
cycles among memos_cli's modules, imports inside functions counted), and the light commands
stay light (neither torch nor transformers imported)."""

from __future__ import annotations

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
FLOORS = {1: ["errors", "digest", "strictjson", "principal", "memory", "version", "config",
              "lockfile", "pausepoints", "atomic"],
          2: ["cube", "sources"],
          3: ["models", "governance"],
          4: ["readers", "tiers", "lifecycle"],
          5: ["vault", "scheduler", "memstore", "objstore", "batch"],
          6: ["api", "evaluation"],
          7: ["cli", "__main__", "memos_cli"]}
#: Upward imports that remain (docs/architecture.md, "Known exceptions"); the list may only
#: shrink.
KNOWN_UPWARD = {("memos_cli.governance.roles", "memos_cli.vault.place")}


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
