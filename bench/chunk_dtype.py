"""Stored KV chunks in float16 against float32 (#34: "store float16 by default where the model
computes in float32; measure answer agreement").

On held-out LoCoMo conversations (42 and 43 by default, never used for tuning), the top-k
turns of each question are retrieved as the plaintext tier does; the chunks are built once
in float32 after the shared prefix; each question is then answered by composing the chunks
(memos's default recompute rule and ratio) as stored in float32, and as stored in float16
(every key and value rounded to float16 and read back as float32, what a float16 file gives
a float32 model). Both are compared with the full prefill of the same prompt: next-token
top-1 agreement and exact agreement of the greedy answer. Bytes per chunk token are
reported for both.

Usage: python bench/chunk_dtype.py [--questions 40] [--k 10] [--answer-tokens 24]
Writes bench/out/chunk_dtype.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.kv_chunks import NOW, ChunkCache, locomo_items, spans_for  # noqa: E402
from bench.retrieval import machine  # noqa: E402
from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.lifecycle.pack import pack  # noqa: E402
from memos_cli.models import chat  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.sources import Defaults  # noqa: E402
from memos_cli.tiers import chunks, prompt  # noqa: E402
from memos_cli.tiers import compose as comp  # noqa: E402
from memos_cli.tiers.decode import generate_ids  # noqa: E402


def half(spans: list[comp.Span]) -> list[comp.Span]:
    import torch

    out = []
    for s in spans:
        kv = None if s.kv is None else [(k.to(torch.float16).to(k.dtype),
                                         v.to(torch.float16).to(v.dtype)) for k, v in s.kv]
        out.append(comp.Span(s.ids, kv, s.start, s.chunk))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conversations", default="42,43")
    ap.add_argument("--questions", type=int, default=40)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--answer-tokens", type=int, default=24)
    args = ap.parse_args()
    locomo = ROOT.parent / "shared/datasets/locomo"
    files = [locomo / f"{c}.json" for c in args.conversations.split(",")]
    lm = chat.load(None, device="cpu")
    enc = Embedder()
    rows: dict[str, dict[str, list[float]]] = {d: {"top1": [], "exact": []}
                                               for d in ("float32", "float16")}
    same: list[float] = []  # the float16 answer is the float32 answer, token for token
    with tempfile.TemporaryDirectory() as tmp:
        cube_path = Path(tmp) / "held-out.memcube"
        pack(files, cube_path, embedder=enc, defaults=Defaults(now=NOW))
        cube = open_cube(cube_path)
        items = locomo_items(cube, enc, lm, files, args.questions, args.k, "memory")
    cc = ChunkCache(lm)
    for n, (q, groups, _) in enumerate(items, start=1):
        ids = [t for p in prompt.pieces(lm.tokenizer, groups, q) for t in p.ids]
        full = generate_ids(lm, ids, max_new_tokens=args.answer_tokens)
        spans = spans_for(cc, groups, q, "prefix")
        answers = []
        for dtype, sp in (("float32", spans), ("float16", half(spans))):
            c = comp.compose(lm.model, sp, ratio=chunks.DEFAULT_RATIO,
                             rule=chunks.DEFAULT_RULE)
            g = generate_ids(lm, c.ids, cache=c.cache, first_logits=c.logits,
                             max_new_tokens=args.answer_tokens)
            rows[dtype]["top1"].append(float(g.token_ids[:1] == full.token_ids[:1]))
            rows[dtype]["exact"].append(float(g.token_ids == full.token_ids))
            answers.append(g.token_ids)
        same.append(float(answers[0] == answers[1]))
        if n % 10 == 0:
            print(f"  {n}/{len(items)}", file=sys.stderr, flush=True)
    res = {"machine": machine(), "model": lm.name, "conversations": args.conversations,
           "questions": len(items), "k": args.k, "answer_tokens": args.answer_tokens,
           "recompute": {"ratio": chunks.DEFAULT_RATIO, "rule": chunks.DEFAULT_RULE},
           **{d: {m: round(statistics.mean(v), 4) for m, v in r.items()}
              for d, r in rows.items()},
           "float16_answer_equals_float32": round(statistics.mean(same), 4),
           "bytes_per_token": {"float32": 4 * 2 * lm.fingerprint()["num_layers"]
                               * lm.fingerprint()["num_kv_heads"]
                               * lm.fingerprint()["head_dim"],
                               "float16": 2 * 2 * lm.fingerprint()["num_layers"]
                               * lm.fingerprint()["num_kv_heads"]
                               * lm.fingerprint()["head_dim"]}}
    (ROOT / "bench/out").mkdir(exist_ok=True)
    (ROOT / "bench/out/chunk_dtype.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
