"""Resource cases of the hostile-input audit (#36): inputs that are valid but large. Each
command runs in its own process with a time limit; its wall time and peak RSS are measured.

- a forged cube of ``--memories`` memories (default 1,000,000; random unit vectors, short
  texts), through ``verify``, ``inspect``, ``search`` (the first builds the index cache, the
  second uses it), ``search -k 1000``, ``search -k 1000000`` (refused) and ``dump``;
- a JSONL source of ``--lines`` tiny lines (default 200,000) through ``pack``;
- a queries file of ``--queries`` lines (default 10,000) through ``search --queries`` on a
  cube of 20,000 tiny lines, beside a file of a tenth as many, to show that memory does not
  grow with the file.

    python bench/hostile_resources.py [--memories N] [--lines N] [--queries N] [--timeout S]
                                      [--parts forged,tiny,queries]

Writes docs/hostile-resources.json (a run of some parts replaces those parts' rows and keeps
the others) and prints the table for docs/guide/hostile-input.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.hostile import run_measured  # noqa: E402
from tests.attacks.test_memory_bound import write_lines  # noqa: E402

WORDS = ["tea", "river", "quiet", "mountain", "budget", "blue", "coffee", "delta"]


def forge(path: Path, n: int) -> float:
    """Write a valid, unsigned cube of ``n`` memories without an embedder (random unit
    vectors in the default embedder's 384 dimensions); returns the seconds it took."""
    from memos_cli.cube.cube import CubeSpec, write_cube
    from memos_cli.memory import Memory
    from memos_cli.models.embedder import Embedder

    t0 = time.perf_counter()
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    mems = [Memory.create(f"{WORDS[i % 8]} {WORDS[(i // 8) % 8]} note {i}", now=now,
                          owner="bench", visibility="public") for i in range(n)]
    rng = np.random.default_rng(0)
    vec = np.empty((n, 384), np.float32)
    for i in range(0, n, 65536):
        block = rng.standard_normal((min(65536, n - i), 384), dtype=np.float32)
        vec[i:i + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    write_cube(path, mems, vec, CubeSpec(name="forged", created_at=now,
                                         embedding=Embedder().describe()))
    return time.perf_counter() - t0


def queries_file(path: Path, n: int) -> None:
    rng = np.random.default_rng(1)
    with path.open("w") as f:
        for i in range(n):
            words = " ".join(WORDS[j] for j in rng.integers(0, 8, 5))
            f.write(json.dumps({"id": i, "query": f"what about {words}?"}) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--memories", type=int, default=1_000_000)
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--out", default=str(ROOT / "docs" / "hostile-resources.json"))
    ap.add_argument("--parts", default="forged,tiny,queries")
    a = ap.parse_args()
    parts = set(a.parts.split(","))
    rows: list[dict[str, object]] = []
    forged_s = 0.0
    with tempfile.TemporaryDirectory(prefix="memos-resources-") as t:
        tmp = Path(t)
        env = {**os.environ, "MEMOS_HOME": str(tmp / "home"), "MEMOS_NO_USAGE": "1",
               "PYTHONPATH": str(ROOT)}
        def run(part: str, case: str, *args: str) -> None:
            o = run_measured(list(args), a.timeout, env)
            err = [x for x in o.stderr.splitlines() if x.strip()]
            rows.append({"part": part, "case": case, "command": " ".join(
                args[:1] + args[2:]).replace(str(tmp) + "/", ""), "exit": o.exit_code,
                "seconds": round(o.seconds, 1),
                "peak_mib": round(o.peak_kib / 1024), "hung": o.hung,
                "stderr_lines": len(err), "last_stderr": err[-1][:200] if err else ""})
            print(rows[-1], flush=True)

        warm = tmp / "warm.jsonl"  # the query encoder's one-time export is not measured
        warm.write_text('{"content": "tea"}\n{"content": "river"}\n')
        run_measured(["pack", str(warm), "-o", str(tmp / "warm.memcube")], a.timeout, env)
        run_measured(["search", str(tmp / "warm.memcube"), "tea"], a.timeout, env)
        if "forged" in parts:
            cube = tmp / "forged.memcube"
            forged_s = forge(cube, a.memories)
            big = f"{a.memories:,}-memory cube"
            run("forged", big, "verify", str(cube))
            run("forged", big, "inspect", str(cube))
            run("forged", big, "search", str(cube), "tea river", "-k", "5")
            run("forged", big, "search", str(cube), "blue delta", "-k", "5")
            run("forged", big, "search", str(cube), "quiet mountain", "-k", "1000")
            run("forged", big, "search", str(cube), "tea", "-k", "1000000")
            run("forged", big, "dump", str(cube), "-o", str(tmp / "dump.jsonl"))
        if "tiny" in parts:
            src = tmp / "tiny.jsonl"
            size = write_lines(src, a.lines, 8, emoji=False)
            run("tiny", f"{a.lines:,} tiny JSONL lines ({size / 2**20:.1f} MiB)", "pack",
                str(src), "-o", str(tmp / "tiny.memcube"))
        if "queries" in parts:
            src = tmp / "tiny20k.jsonl"
            write_lines(src, 20_000, 8, emoji=False)
            small = tmp / "tiny20k.memcube"
            run_measured(["pack", str(src), "-o", str(small)], a.timeout, env)
            for n in (a.queries // 10, a.queries):
                qs = tmp / f"q{n}.jsonl"
                queries_file(qs, n)
                run("queries", f"{n:,} queries, 20,000-memory cube", "search", str(small),
                    "--queries", str(qs))
    out = Path(a.out)
    before = json.loads(out.read_text()) if out.is_file() and parts != {
        "forged", "tiny", "queries"} else {"rows": []}
    kept = [r for r in before["rows"] if r.get("part") not in parts]
    if "forged" not in parts:
        forged_s = before.get("forge_s") or 0.0
    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} "
                         f"cores, Python {platform.python_version()}",
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
              "forge_s": round(forged_s, 1), "timeout_s": a.timeout, "rows": kept + rows}
    rows = kept + rows
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{report['machine']}, {report['date']}; forged in {forged_s:.0f} s")
    print("| input | command | exit | wall s | peak RSS MiB |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | `{r['command']}` | {r['exit']} | {r['seconds']} | "
              f"{r['peak_mib']:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
