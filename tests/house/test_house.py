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
