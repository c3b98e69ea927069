"""Where the searchable data of a cube should live (#33 item 9): the LanceDB database inside
the cube (formats 1.0-1.7), or an Arrow IPC file the spec defines completely, with the Lance
table built from it into a cache on first use.

Both are measured on the same rows, per size (10k and 1M by default):
- write: building what the cube holds (the LanceDB table with its full-text index; or the
  Arrow IPC file), seconds;
- size: bytes the cube holds for it;
- same bytes twice: whether two writes of the same rows give the same bytes (a reproducible
  pack, and `memos push` of an unchanged rebuild sending no blob);
- open (cold): for the Arrow file, reading it and building the cache (the Lance table and its
  full-text index), once per machine per index; for Lance in the cube, opening the table;
- open (warm): opening the Lance table (from the cube, or from the cache);
- search: hybrid search (cosine and BM25, 50 candidates each, fused), k = 10, median over 30
  queries after one warm-up.

Rows are synthetic: LoCoMo turns with their number appended, and random unit vectors of 384
dimensions (the default embedder's size); no embedder runs, so only storage is timed.

Usage: python bench/index_format.py [--sizes 10000,1000000] [--dir /tmp/memos-index-format]
Writes bench/out/index_format.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.retrieval import machine  # noqa: E402
from memos_cli.cube.index import Index, build_index  # noqa: E402


def rows(n: int, dim: int = 384) -> tuple[list[str], list[str], np.ndarray]:
    turns = []
    for f in sorted((ROOT.parent / "shared/datasets/locomo").glob("*.json")):
        conv = json.loads(f.read_text())
        for k, v in conv.items():
            if k.startswith("session_") and isinstance(v, list):
                turns += [t["text"] for t in v if t.get("text")]
    rng = np.random.default_rng(0)
    vec = rng.standard_normal((n, dim), dtype=np.float32)
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(n)]
    return ids, [f"{turns[i % len(turns)]} #{i}" for i in range(n)], vec


def write_arrow(path: Path, ids: list[str], texts: list[str], vec: np.ndarray) -> None:
    dim = vec.shape[1]
    flat = pa.array(vec.reshape(-1), pa.float32())
    table = pa.table({"id": pa.array(ids, pa.string()), "text": pa.array(texts, pa.string()),
                      "vector": pa.FixedSizeListArray.from_arrays(flat, dim)})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table, max_chunksize=65536)


def arrow_to_cache(path: Path, cache: Path) -> None:
    with pa.memory_map(str(path)) as src:
        t = pa.ipc.open_file(src).read_all()
    col = t.column("vector").combine_chunks()
    vec = col.flatten().to_numpy().reshape(len(col), col.type.list_size)
    build_index(cache, t.column("id").to_pylist(), t.column("text").to_pylist(), vec)


def digest_tree(p: Path) -> str:
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
    for q in files:
        h.update(q.relative_to(p.parent).as_posix().encode() if p.is_file() else
                 q.relative_to(p).as_posix().encode())
        h.update(q.read_bytes())
    return h.hexdigest()


def size(p: Path) -> int:
    return p.stat().st_size if p.is_file() else sum(q.stat().st_size for q in p.rglob("*")
                                                    if q.is_file())


def search_ms(index: Index, texts: list[str], vec: np.ndarray) -> float:
    rng = np.random.default_rng(1)
    qs = rng.integers(0, len(texts), 31)
    times = []
    for n, i in enumerate(qs):
        q = " ".join(texts[i].split()[:6])
        t0 = time.perf_counter()
        index.search(q, vec[i], 10)
        if n:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(n: int, work: Path) -> dict[str, object]:
    ids, texts, vec = rows(n)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    lance_a, lance_b = work / "lance-a", work / "lance-b"
    arrow_a, arrow_b = work / "a.arrow", work / "b.arrow"
    out: dict[str, object] = {"memories": n}
    out["lance_write_s"] = timed(lambda: build_index(lance_a, ids, texts, vec))
    build_index(lance_b, ids, texts, vec)
    out["arrow_write_s"] = timed(lambda: write_arrow(arrow_a, ids, texts, vec))
    write_arrow(arrow_b, ids, texts, vec)
    out["lance_bytes"], out["arrow_bytes"] = size(lance_a), size(arrow_a)
    out["lance_same_bytes"] = digest_tree(lance_a) == digest_tree(lance_b)
    out["arrow_same_bytes"] = arrow_a.read_bytes() == arrow_b.read_bytes()
    out["arrow_cold_open_s"] = timed(lambda: arrow_to_cache(arrow_a, work / "cache"))
    out["cache_bytes"] = size(work / "cache")
    out["lance_open_s"] = timed(lambda: Index(lance_a))
    out["cache_open_s"] = timed(lambda: Index(work / "cache"))
    out["lance_search_ms"] = search_ms(Index(lance_a), texts, vec)
    out["cache_search_ms"] = search_ms(Index(work / "cache"), texts, vec)
    shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,1000000")
    ap.add_argument("--dir", default="/tmp/memos-index-format")
    args = ap.parse_args()
    results = [measure(int(s), Path(args.dir)) for s in args.sizes.split(",")]
    for r in results:
        print(json.dumps(r), flush=True)
    (ROOT / "bench/out").mkdir(exist_ok=True)
    (ROOT / "bench/out/index_format.json").write_text(json.dumps(
        {"machine": machine(), "results": results}, indent=1) + "\n")
    print("| memories | | write s | cube bytes | same bytes twice | open s (cold / warm) | "
          "search ms |\n|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['memories']:,} | Lance in the cube | {r['lance_write_s']:.2f} | "
              f"{r['lance_bytes']:,} | {r['lance_same_bytes']} | {r['lance_open_s']:.3f} | "
              f"{r['lance_search_ms']:.1f} |")
        print(f"| | Arrow in the cube, Lance cache | {r['arrow_write_s']:.2f} | "
              f"{r['arrow_bytes']:,} | {r['arrow_same_bytes']} | "
              f"{r['arrow_cold_open_s']:.2f} / {r['cache_open_s']:.3f} | "
              f"{r['cache_search_ms']:.1f} |")


if __name__ == "__main__":
    main()
