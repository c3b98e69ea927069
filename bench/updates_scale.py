"""Cost of the supersession check on a vault load (#30): adding 1,000 memories to a vault of
100,000, with the check and without (``load(..., supersede=False)``, what memos did before),
on this machine. The target is at most 2x.

The vault and the cubes are the synthetic ones of ``bench/scale.py`` (LoCoMo turns embedded
once with the real embedder, each memory a turn with its number appended and the turn's
vector plus noise), all of one owner, so every loaded memory meets candidates of its owner
and the decisions run in full. Because two copies of a turn differ only by their number,
many of them are decided as updates, which is the costly outcome (rows rewritten), not the
usual one. Three batches of 1,000 are loaded with the check and three without, alternating,
each into a fresh copy of the vault, in two forms: a cube (vectors included, so the load
embeds nothing: the harshest reference) and a JSONL file of the same texts (imported on the
way: read, embedded, packed, loaded: what adding new text costs). The owner of the JSONL
memories is the loading user, so they meet candidates of their own in the vault only when
the vault's owner is the same (``bench``). Medians are reported with the decisions.

Usage: python bench/updates_scale.py [--size 100000] [--load 1000] [--dir /tmp/memos-upd]
Writes bench/out/updates_scale.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.retrieval import machine  # noqa: E402
from bench.scale import NOW, base_vectors, build, synthetic, turns_and_questions  # noqa: E402
from memos_cli.cube.cube import CubeSpec, write_cube  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.vault import Vault, load  # noqa: E402

OUT = ROOT / "bench" / "out"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=100_000)
    ap.add_argument("--load", type=int, default=1000)
    ap.add_argument("--dir", default="/tmp/memos-upd")
    args = ap.parse_args()
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    enc = Embedder()
    turns, _ = turns_and_questions()
    base = base_vectors(enc, turns)
    master = work / "vault-master"
    build(master, args.size, turns, base, enc.describe())
    rows: dict[str, list[float]] = {f"{kind}, {mode}": [] for kind in ("cube", "jsonl")
                                    for mode in ("without check", "with check")}
    decided: list[dict[str, int]] = []
    for i in range(3):
        rng = np.random.default_rng(2000 + i)
        mems, vecs = synthetic(20_000_000 * (i + 1), args.load, turns, base, rng)
        cube = write_cube(work / f"load{i}.memcube", mems, vecs,
                          CubeSpec(name=f"load{i}", created_at=NOW,
                                   embedding=enc.describe()), force=True)
        jsonl = work / f"load{i}.jsonl"
        jsonl.write_text("".join(json.dumps({"content": m.content}) + "\n" for m in mems))
        for kind, src in (("cube", cube), ("jsonl", jsonl)):
            for mode in (("without check", "with check") if i % 2 == 0 else
                         ("with check", "without check")):
                vdir = work / "vault"
                shutil.rmtree(vdir, ignore_errors=True)
                shutil.copytree(master, vdir)
                t0 = time.perf_counter()
                rep = load(Vault(vdir), src, user="bench", allow_unsigned=True, now=NOW,
                           supersede=mode == "with check", embedder=enc)
                rows[f"{kind}, {mode}"].append(time.perf_counter() - t0)
                if mode == "with check" and kind == "cube":
                    decided.append({"added": len(rep.added), "updates": len(rep.updates),
                                    "duplicates": len(rep.duplicates)})
                print(kind, mode, round(rows[f"{kind}, {mode}"][-1], 2), flush=True)
    med = {k: statistics.median(v) for k, v in rows.items()}
    result = {"machine": machine(), "vault_memories": args.size, "loaded": args.load,
              "seconds": rows, "median_s": {k: round(v, 2) for k, v in med.items()},
              "ratio_cube": round(med["cube, with check"] / med["cube, without check"], 2),
              "ratio_jsonl": round(med["jsonl, with check"] / med["jsonl, without check"], 2),
              "decisions": decided}
    OUT.mkdir(exist_ok=True)
    (OUT / "updates_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
