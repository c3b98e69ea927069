"""Composition variants of #34 against a full prefill: APE's attention temperature and scale,
recompute chosen over a group of layers or at a deeper layer, a larger shared prefix, and the
chunks ordered with the best-ranked nearest the question.

For each LoCoMo question (categories 1-4) the top k = 10 turns are retrieved through the
library's entry point (``Session.search``); their chunks are built after the shared prefix,
as ``memos convert --to kv --chunks`` builds them, and composed (``tiers.compose``) under each
variant. Every variant is compared with the full prefill of the same prompt (for the two that
change the prompt, ordering and prefix, that prompt's own prefill): next-token top-1
agreement, exact agreement of the greedy answer (``--answer-tokens``), and token-F1 of the
answer against LoCoMo's gold answer, next to the full prefill's own F1.

The variants are chosen on the tuning conversations (26, 30, 41); the held-out ones (42, 43)
are run afterwards with the variants named by ``--held-out-variants`` and reported apart.

Usage:  python bench/compose_variants.py [--questions 45] [--held-out-questions 40]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.kv_chunks import NOW, ChunkCache, f1, locomo_items  # noqa: E402
from bench.retrieval import machine  # noqa: E402
from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.lifecycle.pack import BY_SOURCE, pack  # noqa: E402
from memos_cli.models import chat  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.sources import Defaults  # noqa: E402
from memos_cli.tiers import compose as comp  # noqa: E402
from memos_cli.tiers import generation, prompt  # noqa: E402
from memos_cli.tiers.decode import generate_ids  # noqa: E402

TUNE = ("26", "30", "41")
HELD_OUT = ("42", "43")

#: A longer instruction before the memories (about 150 tokens more of shared prefix), for the
#: ``long-prefix`` variant: it says what the memories are, as a deployment might.
LONG_SYSTEM = (
    "You are a helpful assistant with a memory of earlier conversations between two friends. "
    "The memories below are turns of those conversations, retrieved for the user's question. "
    "Each memory is numbered in brackets and gives the session, the date and time it was "
    "said, the speaker and what they said; a photo they shared is described in words. The "
    "memories are not in the order they were said, and some of them may not be about the "
    "question at all. Use only what the memories say, and prefer the most specific memory "
    "when several of them mention the same thing. Dates in the memories are the dates of the "
    "conversation, not of the events the speakers mention. Answer the user's question using "
    "the memories below; they are the facts you know. Answer briefly. If the memories do not "
    "hold the answer, say that you do not know."
)

#: name -> compose settings, and whether the prompt is reordered (best nearest the question)
#: or has the longer shared prefix.
VARIANTS: dict[str, dict[str, Any]] = {
    "prefix": {"ratio": 0.0, "rule": "none"},
    "dev-30 (default)": {"ratio": 0.30},
    "dev-30, layers 0-3": {"ratio": 0.30, "check_layer": 3, "group": 4},
    "dev-30 at layer 8": {"ratio": 0.30, "check_layer": 8},
    "APE T=0.9 S=0.9": {"ratio": 0.0, "rule": "none", "temperature": 0.9, "scale": 0.9},
    "APE T=0.8 S=1.0": {"ratio": 0.0, "rule": "none", "temperature": 0.8},
    "APE T=1.0 S=0.8": {"ratio": 0.0, "rule": "none", "scale": 0.8},
    "dev-30 + APE T=0.9 S=0.9": {"ratio": 0.30, "temperature": 0.9, "scale": 0.9},
    "dev-30, best last": {"ratio": 0.30, "order": "best-last"},
    "dev-30, long prefix": {"ratio": 0.30, "prefix": "long"},
    "prefix, long prefix": {"ratio": 0.0, "rule": "none", "prefix": "long"},
}


def spans_of(cc: ChunkCache, groups: list, question: str) -> list[comp.Span]:  # type: ignore[type-arg]
    """The prompt as composed pieces: the cached prefix, then per slot the marker and the
    group's chunk (computed after the prefix), then the question."""
    tok = cc.lm.tokenizer
    spans = [comp.Span(cc.prefix.token_ids.tolist(), cc.prefix.layers, 0)]
    for slot, g in enumerate(groups, start=1):
        b = cc.get(g, True)
        spans += [comp.Span(prompt.marker_ids(tok, slot)),
                  comp.Span(b.token_ids.tolist(), b.layers, b.meta.start_position, chunk=True)]
    spans.append(comp.Span(prompt.closing_ids(tok, question)))
    return spans


def run(lm: chat.ChatModel, items: list, variants: list[str], answer_tokens: int  # type: ignore[type-arg]
        ) -> dict[str, Any]:
    """Per variant: mean top-1 and exact agreement with the full prefill of its prompt, mean
    F1 against gold for both, share recomputed, median compose time."""
    caches = {"default": ChunkCache(lm)}
    with generation.using(generation.GenerationOptions(system=LONG_SYSTEM)):
        caches["long"] = ChunkCache(lm)
    rows: dict[str, dict[str, list[float]]] = {v: collections.defaultdict(list)
                                               for v in variants}
    fulls: dict[tuple[int, str, str], Any] = {}
    for n, (q, groups, gold) in enumerate(items, start=1):
        for v in variants:
            cfg = dict(VARIANTS[v])
            order, pre = cfg.pop("order", "rank"), cfg.pop("prefix", "default")
            gs = groups[::-1] if order == "best-last" else groups
            opts = generation.GenerationOptions(system=LONG_SYSTEM if pre == "long" else None)
            with generation.using(opts):
                key = (n, order, pre)
                if key not in fulls:
                    ids = [t for p in prompt.pieces(lm.tokenizer, gs, q) for t in p.ids]
                    fulls[key] = generate_ids(lm, ids, max_new_tokens=answer_tokens)
                full = fulls[key]
                spans = spans_of(caches[pre], gs, q)
                t0 = time.perf_counter()
                c = comp.compose(lm.model, spans, **cfg)
                took = time.perf_counter() - t0
                g = generate_ids(lm, c.ids, cache=c.cache, first_logits=c.logits,
                                 max_new_tokens=answer_tokens)
            r = rows[v]
            r["top1"].append(float(g.token_ids[:1] == full.token_ids[:1]))
            r["exact"].append(float(g.token_ids == full.token_ids))
            r["f1"].append(f1(g.text, gold))
            r["full_f1"].append(f1(full.text, gold))
            r["recomputed"].append(c.recomputed_tokens / max(1, c.cached_tokens
                                                            + c.recomputed_tokens))
            r["compose_s"].append(took)
        if n % 10 == 0:
            print(f"  {n}/{len(items)} questions", file=sys.stderr, flush=True)
    out: dict[str, Any] = {}
    for v, r in rows.items():
        out[v] = {k: round(statistics.mean(x), 4) for k, x in r.items() if k != "compose_s"}
        out[v]["compose_s_median"] = round(statistics.median(r["compose_s"]), 4)
    out["questions"] = len(items)
    return out


def split_items(lm: chat.ChatModel, enc: Any, files: list[Path], n: int, k: int,
                tmp: Path, name: str) -> list:  # type: ignore[type-arg]
    cube_path = tmp / f"{name}.memcube"
    pack(files, cube_path, embedder=enc, defaults=Defaults(now=NOW), readers=BY_SOURCE)
    return locomo_items(open_cube(cube_path), enc, lm, files, n, k, "memory")


def render(res: dict[str, Any]) -> str:
    lines = [f"Machine: {res['machine']}; {res['date']}; {res['model']}, k = {res['k']}, "
             f"{res['answer_tokens']} answer tokens, greedy.", ""]
    for split in ("tune", "held_out"):
        if split not in res:
            continue
        part = res[split]
        lines += [f"{split.replace('_', '-')} ({', '.join(res[split + '_conversations'])}), "
                  f"{part['questions']} questions:", "",
                  "| variant | recomputed | next token = full | answer = full | F1 (full's F1) "
                  "| compose median |", "|---|---|---|---|---|---|"]
        for v, r in part.items():
            if v == "questions":
                continue
            lines.append(f"| {v} | {r['recomputed']:.0%} | {r['top1']:.3f} | {r['exact']:.3f} "
                         f"| {r['f1']:.3f} ({r['full_f1']:.3f}) | {r['compose_s_median']:.3f} s |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--locomo", type=Path, default=ROOT.parent / "shared/datasets/locomo")
    ap.add_argument("--questions", type=int, default=45)
    ap.add_argument("--held-out-questions", type=int, default=40)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--answer-tokens", type=int, default=16)
    ap.add_argument("--variants", default=";".join(VARIANTS), help="separated by ;")
    ap.add_argument("--held-out-variants", default="prefix;dev-30 (default)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out")
    args = ap.parse_args()
    torch.manual_seed(0)
    lm = chat.load(None, device="cpu")
    enc = Embedder()
    res: dict[str, Any] = {"machine": machine(), "model": lm.name, "k": args.k,
                           "answer_tokens": args.answer_tokens,
                           "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
                           "tune_conversations": list(TUNE),
                           "held_out_conversations": list(HELD_OUT)}
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for split, names, n, vs in (
                ("tune", TUNE, args.questions, args.variants),
                ("held_out", HELD_OUT, args.held_out_questions, args.held_out_variants)):
            if n <= 0:
                continue
            files = [args.locomo / f"{c}.json" for c in names]
            items = split_items(lm, enc, files, n, args.k, Path(tmp), split)
            print(f"{split}: {len(items)} questions", file=sys.stderr)
            res[split] = run(lm, items, [v for v in vs.split(";") if v], args.answer_tokens)
            (args.out / "compose_variants.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / "compose_variants.md").write_text(render(res) + "\n")
    print(render(res))


if __name__ == "__main__":
    main()
