"""KV chunk builds, one chunk per forward pass against eight (#34: `memos convert --to kv
--chunks` of a LoCoMo conversation took 16 minutes; the scheduler's builder batched, convert
did not).

The default chat model (SmolLM2-135M-Instruct, float32 on the CPU) builds the chunks of the
first N turns of a held-out LoCoMo conversation (42, never used for tuning) twice in the
same run, alternating, R rounds: one chunk per pass (``chunk_build.build_chunk``, what convert did)
and eight per pass (``chunk_build.build_chunks``, right-padded rows, what convert does now). It
reports the median seconds per chunk of each and the largest difference between a batched
chunk's keys and values and the single pass's (float rounding of the batched products).

Against the limit (#34: "a plain prefill of the same tokens in the same batch sizes"): the
same rows (slot marker, chunk tokens, right padding), sorted and batched as the builder does,
run through the model over the same shared-prefix cache, with nothing kept; and the whole
user path, ``convert_to_chunks`` of the same turns into a fresh copy of a packed cube
(float16 chunks, the default, files written and the cube re-signed as unsigned), per chunk.
The ratio is the limit's time over each path's: 1.0 means no overhead beyond the prefill.

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
from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.lifecycle.pack import pack  # noqa: E402
from memos_cli.models import chat  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.sources import Defaults, read_sources  # noqa: E402
from memos_cli.tiers import chunk_build, prompt  # noqa: E402
from memos_cli.tiers.convert_chunks import convert_to_chunks  # noqa: E402


def plain_prefill(lm: chat.ChatModel, prefix: chunk_build.Built, groups: list,  # type: ignore[type-arg]
                  batch: int) -> None:
    """The limit: the builder's rows in the builder's batches through the model over the
    prefix cache, nothing kept (``chunk_build.build_chunks`` without its bookkeeping)."""
    import torch
    from transformers import DynamicCache

    tok = lm.tokenizer
    marker = prompt.marker_ids(tok, 1)
    items = sorted((prompt.chunk_ids(tok, g) for g in groups), key=len)
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    for b0 in range(0, len(items), batch):
        part = items[b0:b0 + batch]
        width = max(len(ids) for ids in part)
        rows = [marker + ids + [pad] * (width - len(ids)) for ids in part]
        work = DynamicCache()
        for i, (k, v) in enumerate(prefix.layers):
            work.update(k.unsqueeze(0).expand(len(part), -1, -1, -1).contiguous(),
                        v.unsqueeze(0).expand(len(part), -1, -1, -1).contiguous(), i)
        with torch.inference_mode():
            lm.model.base_model(input_ids=torch.tensor(rows), past_key_values=work,
                                use_cache=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conversation", type=Path,
                    default=ROOT.parent / "shared/datasets/locomo/42.json")
    ap.add_argument("--turns", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    import shutil
    import tempfile

    import torch

    torch.set_num_threads(2)
    now = datetime.now(timezone.utc)
    mems = read_sources([args.conversation], Defaults(now=now)).results[0].memories[:args.turns]
    lm = chat.load()
    prefix = chunk_build.build_prefix(lm)
    groups = [[m] for m in mems]
    tmp = Path(tempfile.mkdtemp())
    packed = tmp / "turns.memcube"
    pack([args.conversation], packed, embedder=Embedder(), defaults=Defaults(now=now))
    ids = {x.id for x in mems}
    cube_mems = [m for m in open_cube(packed).memories if m.id in ids]
    if len(cube_mems) < len(mems) // 2:  # ids made apart from the pack: its first N turns
        cube_mems = open_cube(packed).memories[:args.turns]
    one_s, batch_s, limit_s, convert_s, worst = [], [], [], [], 0.0
    for r in range(args.rounds):
        t0 = time.perf_counter()
        plain_prefill(lm, prefix, groups, args.batch)
        limit_s.append((time.perf_counter() - t0) / len(groups))
        work = tmp / f"round{r}.memcube"
        shutil.copytree(packed, work)
        t0 = time.perf_counter()
        convert_to_chunks(work, lm, cube_mems, storage_dtype="float16")
        convert_s.append((time.perf_counter() - t0) / len(cube_mems))
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
           "limit_s_per_chunk": statistics.median(limit_s),
           "convert_s_per_chunk": statistics.median(convert_s),
           "convert_chunks": len(cube_mems),
           "chunks_per_s": {"limit": 1 / statistics.median(limit_s),
                            "batched build": 1 / statistics.median(batch_s),
                            "convert_to_chunks": 1 / statistics.median(convert_s)},
           "ratio_to_limit": {"batched build": statistics.median(limit_s)
                              / statistics.median(batch_s),
                              "convert_to_chunks": statistics.median(limit_s)
                              / statistics.median(convert_s)},
           "max_abs_difference": worst,
           "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    (ROOT / "bench/out").mkdir(exist_ok=True)
    (ROOT / "bench/out/chunk_build.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
