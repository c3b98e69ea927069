"""Vault scale benchmark (#16): loading 10,000 memories into vaults that already hold 10k,
100k and 1M memories, and search latency and ANN recall at each size, on this machine.

Memories. The large vaults are synthetic, as the issue allows: every LoCoMo turn of
``../shared/datasets/locomo`` is embedded once with the real embedder (all-MiniLM-L6-v2), and
memory ``i`` is turn ``i mod T`` with its number appended (so no two are duplicates) and
the turn's vector plus Gaussian noise (sigma 0.03 per dimension, cosine about 0.75 to its
turn), normalised: the vectors keep the real embedder's structure. A vault of N is built by
one ``Vault.apply`` per 50,000 memories (the code a load commits with) and then
``Vault.compact`` (Lance's optimize; the IVF-PQ index from 100k memories on).

Measured, per size:
- load: ``memos_cli.vault.load`` of a 10,000-memory cube (written with synthetic vectors,
  unsigned, verified as any load is), three different cubes in a row, median wall time;
- search: ``memos_cli.vault.search`` (hybrid, k = 10, as ``memos search --vault``) of 60
  LoCoMo questions, query embedding included, p50 and p95 after one warm-up query;
- recall@10 of the vector index against exact search (``bypass_vector_index``) over the same
  60 query vectors (below 100k memories there is no index and recall is 1 by construction).

Usage: python bench/scale.py [--sizes 10000,100000,1000000] [--dir /tmp/memos-scale]
Writes bench/out/scale.json and bench/out/scale.md (the README's table).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.retrieval import machine  # noqa: E402
from memos_cli.cube.cube import CubeSpec, write_cube  # noqa: E402
from memos_cli.cube.index import NPROBES, REFINE_FACTOR  # noqa: E402
from memos_cli.memory import Memory  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.vault import Vault, load, search  # noqa: E402
from memos_cli.vault.rows import Delta  # noqa: E402

LOCOMO = ROOT.parent / "shared" / "datasets" / "locomo"
NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)
OUT = ROOT / "bench" / "out"
BATCH = 50_000
SIGMA = 0.03


def turns_and_questions() -> tuple[list[str], list[str]]:
    files = sorted(LOCOMO.glob("*.json"))
    data = json.loads(files[0].read_text()) if len(files) == 1 else [
        json.loads(f.read_text()) for f in files]
    convs = data if isinstance(data, list) else [data]
    turns, questions = [], []
    for conv in convs:
        c = conv.get("conversation", conv)
        for key, value in c.items():
            if key.startswith("session_") and isinstance(value, list):
                turns += [f"{t.get('speaker', '')}: {t.get('text', '')}" for t in value
                          if isinstance(t, dict)]
        questions += [q["question"] for q in conv.get("qa", []) if "question" in q]
    return turns, questions


def base_vectors(enc: Embedder, turns: list[str]) -> np.ndarray:
    cache = OUT / "cache" / f"scale-base-{len(turns)}.npy"
    if cache.is_file():
        return np.load(cache)
    vecs = np.asarray(enc.encode(turns), np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vecs)
    return vecs


def synthetic(start: int, n: int, turns: list[str], base: np.ndarray,
              rng: np.random.Generator) -> tuple[list[Memory], np.ndarray]:
    idx = np.arange(start, start + n) % len(turns)
    vecs = base[idx] + rng.normal(0, SIGMA, (n, base.shape[1])).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    mems = [Memory.create(f"{turns[j]} (#{start + i})", now=NOW, owner="bench",
                          visibility="public") for i, j in enumerate(idx.tolist())]
    return mems, vecs.astype(np.float32)


def build(path: Path, n: int, turns: list[str], base: np.ndarray, embedding: dict) -> float:
    shutil.rmtree(path, ignore_errors=True)
    v = Vault(path)
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for start in range(0, n, BATCH):
        mems, vecs = synthetic(start, min(BATCH, n - start), turns, base, rng)
        delta = Delta(memories=[(m, x, "bench") for m, x in zip(mems, vecs, strict=True)])
        if start == 0:
            delta.cubes["bench"] = {"name": "bench", "installed_by": "bench",
                                    "installed_at": "2026-11-01T00:00:00.000000Z"}
            delta.meta["embedding"] = embedding
        v.apply(delta, dim=base.shape[1])
    from datetime import timedelta

    from memos_cli.vault.compact import compact

    compact(v, timedelta(0))
    return time.perf_counter() - t0


def cube_of(path: Path, seed: int, turns: list[str], base: np.ndarray,
            embedding: dict) -> Path:
    rng = np.random.default_rng(1000 + seed)
    mems, vecs = synthetic(10_000_000 * (seed + 1), 10_000, turns, base, rng)
    spec = CubeSpec(name=f"load{seed}", created_at=NOW, embedding=embedding)
    return write_cube(path, mems, vecs, spec, force=True)


def measure(size: int, work: Path, enc: Embedder, turns: list[str], base: np.ndarray,
            questions: list[str]) -> dict:
    vdir = work / f"vault-{size}"
    built = build(vdir, size, turns, base, enc.describe())
    cubes = [cube_of(work / f"load{i}.memcube", i, turns, base, enc.describe())
             for i in range(3)]
    loads = []
    for c in cubes:
        t0 = time.perf_counter()
        load(Vault(vdir), c, user="bench", allow_unsigned=True, now=NOW)
        loads.append(time.perf_counter() - t0)
    v = Vault(vdir)
    search(v, enc, questions[0], 10, user="bench")  # warm-up: opens the table and indexes
    times = []
    for q in questions:
        t0 = time.perf_counter()
        search(v, enc, q, 10, user="bench")
        times.append(time.perf_counter() - t0)
    tbl = v.table()
    indexed = any(i.columns == ["vector"] for i in tbl.list_indices())
    recall = []
    for q in questions:
        vec = enc.encode([q])[0]

        def top(exact: bool, vec: np.ndarray = vec) -> set[str]:
            s = tbl.search(vec, query_type="vector").metric("cosine")
            s = s.bypass_vector_index() if exact else s.nprobes(NPROBES).refine_factor(
                REFINE_FACTOR)
            return {r["id"] for r in s.limit(10).select(["id", "_distance"]).to_list()}

        recall.append(len(top(False) & top(True)) / 10)
    times.sort()
    return {"size": size, "build_s": round(built, 1), "load_10k_s": loads,
            "load_10k_median_s": round(statistics.median(loads), 2),
            "search_p50_ms": round(1000 * statistics.median(times), 1),
            "search_p95_ms": round(1000 * times[int(0.95 * (len(times) - 1))], 1),
            "ann_index": indexed, "recall_at_10": round(float(np.mean(recall)), 3),
            "disk_bytes": sum(p.stat().st_size for p in vdir.rglob("*") if p.is_file())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dir", default="/tmp/memos-scale")
    ap.add_argument("--questions", type=int, default=60)
    ap.add_argument("--keep", action="store_true", help="keep the vaults (for profiling)")
    args = ap.parse_args()
    work = Path(args.dir)
    work.mkdir(parents=True, exist_ok=True)
    enc = Embedder()
    turns, questions = turns_and_questions()
    base = base_vectors(enc, turns)
    rows = []
    for size in (int(x) for x in args.sizes.split(",")):
        rows.append(measure(size, work, enc, turns, base, questions[:args.questions]))
        print(json.dumps(rows[-1]), flush=True)
        if not args.keep:
            shutil.rmtree(work / f"vault-{size}", ignore_errors=True)
    result = {"machine": machine(), "turns": len(turns), "rows": rows}
    OUT.mkdir(exist_ok=True)
    (OUT / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| memories in the vault | load 10k (median of 3) | search p50 | search p95 | "
             "vector index | recall@10 vs exact | disk |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']:,} | {r['load_10k_median_s']:.2f} s | "
                     f"{r['search_p50_ms']:.1f} ms | {r['search_p95_ms']:.1f} ms | "
                     f"{'IVF-PQ' if r['ann_index'] else 'none (exact)'} | "
                     f"{r['recall_at_10']:.3f} | {r['disk_bytes'] / 2**20:,.0f} MiB |")
    (OUT / "scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
