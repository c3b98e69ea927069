"""When composing cached KV chunks stops paying (#34: "--tier auto must fall back to a plain
prefill when composing costs more than it saves; fewer than about 20% of the retrieved
memories cached was the break-even last time; measure it").

On a held-out LoCoMo conversation (42), for each question the top-k turns are retrieved as
the plaintext tier does and their chunks built once (after the shared prefix). Then, for each
share s of the k slots that have a chunk (the best-ranked ones first; the others prefilled as
text), the time to first token of composing (memos's default recompute) is measured against
the plain prefill of the same prompt, alternating, median over the questions after one
warm-up. The break-even share is the smallest s whose median ratio is below 1.

Usage: python bench/auto_breakeven.py [--questions 20] [--k 10]
Writes bench/out/auto_breakeven.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.kv_chunks import NOW, ChunkCache, locomo_items  # noqa: E402
from bench.retrieval import machine  # noqa: E402
from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.lifecycle.pack import pack  # noqa: E402
from memos_cli.models import chat  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.sources import Defaults  # noqa: E402
from memos_cli.tiers import chunks, prompt  # noqa: E402
from memos_cli.tiers import compose as comp  # noqa: E402
from memos_cli.tiers.decode import generate_ids  # noqa: E402

SHARES = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def spans(cc: ChunkCache, groups: list, question: str, cached: int) -> list[comp.Span]:  # type: ignore[type-arg]
    tok = cc.lm.tokenizer
    out = [comp.Span(cc.prefix.token_ids.tolist(), cc.prefix.layers, 0)]
    for slot, g in enumerate(groups, start=1):
        out.append(comp.Span(prompt.marker_ids(tok, slot)))
        if slot <= cached:
            b = cc.get(g, True)
            out.append(comp.Span(b.token_ids.tolist(), b.layers, b.meta.start_position, True))
        else:
            out.append(comp.Span(prompt.chunk_ids(tok, g)))
    out.append(comp.Span(prompt.closing_ids(tok, question)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conversation", default="42")
    ap.add_argument("--questions", type=int, default=20)
    ap.add_argument("--k", type=int, default=10)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    f = ROOT.parent / "shared/datasets/locomo" / f"{args.conversation}.json"
    lm = chat.load(None, device="cpu")
    enc = Embedder()
    with tempfile.TemporaryDirectory() as tmp:
        pack([f], Path(tmp) / "c.memcube", embedder=enc, defaults=Defaults(now=NOW))
        items = locomo_items(open_cube(Path(tmp) / "c.memcube"), enc, lm, [f],
                             args.questions + 1, args.k, "memory")
    cc = ChunkCache(lm)
    ratios: dict[float, list[float]] = {s: [] for s in SHARES}
    prefill_s: list[float] = []
    for n, (q, groups, _) in enumerate(items):
        for g in groups:
            cc.get(g, True)  # built before timing: a cached chunk is on disk already
        ids = [t for p in prompt.pieces(lm.tokenizer, groups, q) for t in p.ids]
        for share in SHARES:
            t0 = time.perf_counter()
            generate_ids(lm, ids, max_new_tokens=1)
            full = time.perf_counter() - t0
            sp = spans(cc, groups, q, round(share * len(groups)))
            t0 = time.perf_counter()
            c = comp.compose(lm.model, sp, ratio=chunks.DEFAULT_RATIO, rule=chunks.DEFAULT_RULE)
            generate_ids(lm, c.ids, cache=c.cache, first_logits=c.logits, max_new_tokens=1)
            composed = time.perf_counter() - t0
            if n:  # the first question warms up
                ratios[share].append(composed / full)
                if share == 0.0:
                    prefill_s.append(full)
        print(f"  {n}/{len(items) - 1}", file=sys.stderr, flush=True)
    med = {str(s): round(statistics.median(v), 3) for s, v in ratios.items()}
    even = next((s for s in SHARES if statistics.median(ratios[s]) < 1.0), None)
    res = {"machine": machine(), "model": lm.name, "conversation": args.conversation,
           "questions": len(items) - 1, "k": args.k,
           "recompute": {"ratio": chunks.DEFAULT_RATIO, "rule": chunks.DEFAULT_RULE},
           "prefill_ttft_s_median": round(statistics.median(prefill_s), 4),
           "composed_over_prefill_ttft": med, "break_even_share": even}
    (ROOT / "bench/out").mkdir(exist_ok=True)
    (ROOT / "bench/out/auto_breakeven.json").write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
