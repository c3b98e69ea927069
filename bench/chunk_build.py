"""KV chunk builds, one chunk per forward pass against eight (#34: `memos convert --to kv
--chunks` of a LoCoMo conversation took 16 minutes; the scheduler's builder batched, convert
did not).

The default chat model (SmolLM2-135M-Instruct, float32 on the CPU) builds the chunks of the
first N turns of a held-out LoCoMo conversation (42, never used for tuning) twice in the
same run, alternating, R rounds: one chunk per pass (``chunk_build.build_chunk``, what convert did)
and eight per pass (``chunk_build.build_chunks``, right-padded rows, what convert does now). It
reports the median seconds per chunk of each and the largest difference between a batched
chunk's keys and values and the single pass's (float rounding of the batched products).

Usage: python bench/chunk_build.py [--turns 64] [--rounds 3]
Writes bench/out/chunk_build.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.retrieval import machine  # noqa: E402
from memos_cli.models import chat  # noqa: E402
from memos_cli.sources import Defaults, read_sources  # noqa: E402
from memos_cli.tiers import chunk_build  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conversation", type=Path,
                    default=ROOT.parent / "shared/datasets/locomo/42.json")
    ap.add_argument("--turns", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    mems = read_sources([args.conversation], Defaults(now=datetime.now(timezone.utc))
                        ).results[0].memories[:args.turns]
    lm = chat.load()
    prefix = chunk_build.build_prefix(lm)
    groups = [[m] for m in mems]
    one_s, batch_s, worst = [], [], 0.0
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        single = [chunk_build.build_chunk(lm, prefix, g) for g in groups]
        one_s.append((time.perf_counter() - t0) / len(groups))
        t0 = time.perf_counter()
        batched = dict(chunk_build.build_chunks(lm, prefix, groups, batch=args.batch))
        batch_s.append((time.perf_counter() - t0) / len(groups))
        for n, s in enumerate(single):
            for (k1, v1), (k2, v2) in zip(s.layers, batched[n].layers, strict=True):
                worst = max(worst, float((k1 - k2).abs().max()), float((v1 - v2).abs().max()))
    res = {"machine": machine(), "model": lm.name, "turns": len(groups),
           "rounds": args.rounds, "batch": args.batch,
           "one_per_pass_s_per_chunk": statistics.median(one_s),
           "batched_s_per_chunk": statistics.median(batch_s),
           "speedup": statistics.median(one_s) / statistics.median(batch_s),
           "max_abs_difference": worst,
           "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (ROOT / "bench/out").mkdir(exist_ok=True)
    (ROOT / "bench/out/chunk_build.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
