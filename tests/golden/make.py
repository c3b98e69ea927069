"""Write the golden cube of one format version with the memos in ``--src`` (spec §9).

Goldens are made once per format version and never rewritten. Older ones were made by the
memos commit that introduced their version (a git worktree of it given as ``--src``), so they
hold exactly what that version wrote::

    python -m tests.golden.make --src /path/to/worktree --tier kv --out fixtures/golden/v1.1.memcube

The cube is the golden corpus packed as ``tests/cube/test_golden.py`` packs it, converted to
the tier asked for with the golden model (``tests/golden/model.py``), and signed with a fresh
key whose public half is written beside it (``vM.N.pub``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GOLDEN = HERE.parents[1] / "fixtures" / "golden"

PACK = """
import os, sys
from datetime import datetime, timezone
from memos_cli.cube import generate_keypair
from memos_cli.models.embedder import Embedder
from memos_cli.lifecycle.pack import pack
from memos_cli.sources import Defaults
work, out = sys.argv[1], sys.argv[2]
generate_keypair(os.path.join(work, "golden"))
os.chdir(sys.argv[3])
# updates.jsonl (a dated revision) from 1.7; older worktrees have the corpus alone
pack([p for p in ("corpus", "updates.jsonl") if os.path.exists(p)], out,
     embedder=Embedder(), key=None, force=True,
     cube_id="00000000-0000-4000-8000-000000000001",
     defaults=Defaults(now=datetime(2024, 3, 1, 9, 30, tzinfo=timezone.utc), owner="golden"),
     description="golden test cube", name="golden")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--src", type=Path, required=True, help="a memos source tree")
    ap.add_argument("--tier", choices=("text", "kv", "chunks", "lora", "context"),
                    action="append",
                    help="tiers to add, in order (repeatable; default text); context re-indexes "
                         "with the context MemReader (1.6)")
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    from tests.golden.model import build

    src = a.src.resolve()
    env = {**os.environ, "PYTHONPATH": str(src), "SOURCE_DATE_EPOCH": "1709285400",
           "MEMOS_NO_USAGE": "1"}
    out = a.out.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = build(work / "model")
        cube = work / a.out.name
        # run in the source tree: `python -m` and `-c` put the working directory first
        subprocess.run([sys.executable, "-c", PACK, str(work), str(cube), str(GOLDEN)],
                       env=env, check=True, cwd=src)
        key = work / "golden.key"
        memos = [sys.executable, "-m", "memos_cli"]
        for tier in a.tier or ["text"]:
            add_tier(memos, tier, cube, model, key, env, src)
        if out.exists():
            raise SystemExit(f"{out} exists: goldens are never rewritten")
        shutil.copytree(cube, out)
        shutil.copy(work / "golden.pub", out.with_suffix(".pub"))
    print(f"wrote {out}")


def add_tier(memos: list[str], tier: str, cube: Path, model: Path, key: Path,
             env: dict[str, str], src: Path) -> None:
    if tier in ("text", "context"):
        extra = ["--reader", "context"] if tier == "context" else []
        subprocess.run([*memos, "reindex", str(cube), *extra, "--key", str(key)], env=env,
                       check=True, cwd=src)
    elif tier in ("kv", "chunks"):
        extra = ["--chunks"] if tier == "chunks" else []
        subprocess.run([*memos, "convert", str(cube), "--to", "kv", "--model", str(model),
                        *extra, "--key", str(key)], env=env, check=True, cwd=src)
    else:
        subprocess.run([*memos, "convert", str(cube), "--to", "lora", "--model", str(model),
                        "--recipe", "text", "--epochs", "2", "--rank", "4", "--seed", "0",
                        "--key", str(key)], env=env, check=True, cwd=src)


if __name__ == "__main__":
    main()
