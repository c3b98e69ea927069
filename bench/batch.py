"""Pack throughput (#16): the raw encoder, ``memos pack`` in process, and ``memos pack --ray``
with 2 encoder actors on a local Ray cluster, on the same corpus, on this machine.

Corpus: ``--memories`` LoCoMo turns (``../shared/datasets/locomo``) written as one JSONL file,
each turn one memory; past the 2,760 turns they repeat with their number appended (so none is
a duplicate). Every configuration packs the same file into a new cube;
the raw encoder embeds the same index texts (``index_text`` of the packed memories) with
``Embedder.encode``, the call ``pack`` makes. The model is loaded once before timing in every
configuration, and the Ray cluster is started once (its start-up is reported apart). Medians
of ``--runs`` runs. In-process overhead = pack time / raw encoder time - 1 (target: <= 10%).

Usage: python bench/batch.py [--memories 2000] [--runs 3]
Writes bench/out/batch.json and bench/out/batch.md (the README's table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.retrieval import machine  # noqa: E402
from bench.scale import turns_and_questions  # noqa: E402
from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.cube.index import index_text  # noqa: E402
from memos_cli.lifecycle.pack import pack  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.sources import Defaults  # noqa: E402

OUT = ROOT / "bench" / "out"
NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--memories", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    os.environ["MEMOS_NO_USAGE"] = "1"
    turns, _ = turns_and_questions()
    work = Path(tempfile.mkdtemp(prefix="memos-batch-"))
    corpus = work / "turns.jsonl"
    corpus.write_text("".join(
        json.dumps({"content": turns[i % len(turns)] + (f" (#{i})" if i >= len(turns) else "")})
        + "\n" for i in range(args.memories)))
    enc = Embedder()
    defaults = Defaults(now=NOW, owner="bench")

    def pack_once(name: str, encode=None) -> tuple[float, int]:  # type: ignore[no-untyped-def]
        out = work / f"{name}.memcube"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        report = pack([corpus], out, embedder=enc, defaults=defaults, encode=encode)
        return time.perf_counter() - t0, report.memories

    _, n = pack_once("warm")  # warm-up: first-use costs of LanceDB, tokenizer caches
    texts = [index_text(m) for m in open_cube(work / "warm.memcube").memories]
    raw, here, on_ray = [], [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        enc.encode(texts)
        raw.append(time.perf_counter() - t0)
        here.append(pack_once("here")[0])
    import ray

    from memos_cli.batch.embed import ray_encoder

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    ray_start = time.perf_counter() - t0
    encode = ray_encoder(ray, enc, args.workers)
    pack_once("ray-warm", encode)  # the actors' first model load is part of this run
    for _ in range(args.runs):
        on_ray.append(pack_once("ray", encode)[0])
    ray.shutdown()
    shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in
           {"encoder": raw, "in_process": here, "ray": on_ray}.items()}
    result = {"machine": machine(), "memories": n, "runs": args.runs,
              "ray_workers": args.workers, "ray_start_s": round(ray_start, 2),
              "seconds": {k: [round(x, 3) for x in v] for k, v in
                          {"encoder": raw, "in_process": here, "ray": on_ray}.items()},
              "median_s": {k: round(v, 3) for k, v in med.items()},
              "memories_per_s": {k: round(n / v, 1) for k, v in med.items()},
              "in_process_overhead": round(med["in_process"] / med["encoder"] - 1, 3),
              "ray_overhead": round(med["ray"] / med["encoder"] - 1, 3)}
    OUT.mkdir(exist_ok=True)
    (OUT / "batch.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = [("raw encoder (`Embedder.encode`)", "encoder"), ("`memos pack` in process",
                                                            "in_process"),
            (f"`memos pack --ray` ({args.workers} actors)", "ray")]
    lines = ["| configuration | median time | memories/s | over the encoder |",
             "|---|---|---|---|"]
    for label, k in rows:
        over = "-" if k == "encoder" else f"{100 * (med[k] / med['encoder'] - 1):+.1f}%"
        lines.append(f"| {label} | {med[k]:.2f} s | {n / med[k]:.0f} | {over} |")
    (OUT / "batch.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(result, indent=2))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
