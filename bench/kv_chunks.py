"""KV chunks benchmark: composition fidelity, answer quality and time to first token of the
activation tier that follows retrieval, against a full prefill of the same prompt, on the
default model (SmolLM2-135M-Instruct) and this machine.

Corpora: the LoCoMo conversations (one memory per turn; questions of categories 1-4 with gold
answers), and a Markdown corpus of longer document chunks (Node.js API docs as Debian's
``nodejs`` package installs them under /usr/share/doc/nodejs/api; questions made from the
section headings, no gold answers, so fidelity only). For every question the top-k memories
are retrieved exactly as the plaintext tier does; the *full* prompt is the plaintext tier's
(every token prefilled), and each variant composes the same tokens from cached chunks:

- ``naive``: chunks computed alone at position 0, keys left where they were (MemOS);
- ``rerotate``: chunks computed alone, keys re-rotated to their place;
- ``prefix``: chunks computed after the shared prefix, re-rotated (memos' chunk layout);
- ``first-R`` / ``dev-R``: ``prefix`` plus R% of the chunk tokens recomputed, the first of
  each chunk (EPIC) or those whose layer-1 keys deviate most (CacheBlend);
- ``*-alone``: the same recompute over chunks computed alone.

Reported per variant: next-token top-1 agreement with the full prefill (the first greedy
token), exact agreement of the greedy answer (``--answer-tokens`` tokens), token-F1 against
the gold answers (SQuAD-style), and the median time to first token of the product path
(``memos run`` with chunks in a cube against the plaintext tier) at k = 5, 10, 20.

Usage: python bench/kv_chunks.py [--questions 200] [--k 10] [--out bench/out]
Writes bench/out/kv_chunks.json, bench/out/kv_chunks.md and docs/kv_chunks.png.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.retrieval import machine, search  # noqa: E402
from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.lifecycle.pack import pack  # noqa: E402
from memos_cli.models import chat  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.sources import Defaults  # noqa: E402
from memos_cli.tiers import chunk_build, chunks, prompt  # noqa: E402
from memos_cli.tiers import compose as comp  # noqa: E402
from memos_cli.tiers.convert_chunks import convert_to_chunks  # noqa: E402
from memos_cli.tiers.decode import generate_ids  # noqa: E402
from memos_cli.tiers.plaintext import answer_memories  # noqa: E402

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
#: name -> (chunks after the prefix?, rotate?, rule, ratio)
VARIANTS = {
    "naive": (False, False, "none", 0.0),
    "rerotate": (False, True, "none", 0.0),
    "prefix": (True, True, "none", 0.0),
    "first-15": (True, True, "first", 0.15),
    "dev-5": (True, True, "deviation", 0.05),
    "dev-10": (True, True, "deviation", 0.10),
    "dev-15": (True, True, "deviation", 0.15),
    "dev-20": (True, True, "deviation", 0.20),
    "dev-30": (True, True, "deviation", 0.30),
    "dev-50": (True, True, "deviation", 0.50),
    "dev-15-alone": (False, True, "deviation", 0.15),
    "dev-30-alone": (False, True, "deviation", 0.30),
}


def tokens(text: str) -> list[str]:
    text = re.sub(r"\b(a|an|the)\b", " ", text.lower())
    return re.sub(r"[^\w\s]", " ", text).split()


def f1(pred: str, gold: str) -> float:
    p, g = tokens(pred), tokens(gold)
    common = sum((collections.Counter(p) & collections.Counter(g)).values())
    if not p or not g or not common:
        return 0.0
    prec, rec = common / len(p), common / len(g)
    return 2 * prec * rec / (prec + rec)


class ChunkCache:
    """Chunks built on demand: after the prefix and alone, per group of memories."""

    def __init__(self, lm: chat.ChatModel) -> None:
        self.lm = lm
        self.prefix = chunk_build.build_prefix(lm)
        self.store: dict[tuple[str, bool], chunk_build.Built] = {}

    def get(self, group: list, after_prefix: bool) -> chunk_build.Built:  # type: ignore[type-arg]
        key = (chunk_build.key_of(group), after_prefix)
        if key not in self.store:
            prefix = self.prefix if after_prefix else None
            self.store[key] = chunk_build.build_chunk(self.lm, prefix, group)
        return self.store[key]


def spans_for(cc: ChunkCache, groups: list, question: str, variant: str  # type: ignore[type-arg]
              ) -> list[comp.Span]:
    after, rotate, _, _ = VARIANTS[variant]
    tok = cc.lm.tokenizer
    pre = cc.prefix
    spans = [comp.Span(pre.token_ids.tolist(), pre.layers, 0)]
    at = len(spans[0].ids)
    for slot, g in enumerate(groups, start=1):
        spans.append(comp.Span(prompt.marker_ids(tok, slot)))
        at += len(spans[-1].ids)
        b = cc.get(g, after)
        start = b.meta.start_position if rotate else at  # naive: no rotation at all
        spans.append(comp.Span(b.token_ids.tolist(), b.layers, start, chunk=True))
        at += len(spans[-1].ids)
    spans.append(comp.Span(prompt.closing_ids(tok, question)))
    return spans


def fidelity(lm: chat.ChatModel, cc: ChunkCache, items: list, variants: list[str],  # type: ignore[type-arg]
             answer_tokens: int) -> dict:  # type: ignore[type-arg]
    """items: (question, groups, gold or None)."""
    rows: dict[str, dict[str, list[float]]] = {v: collections.defaultdict(list)
                                               for v in ["full", *variants]}
    for n, (q, groups, gold) in enumerate(items, start=1):
        ids = [t for p in prompt.pieces(lm.tokenizer, groups, q) for t in p.ids]
        full = generate_ids(lm, ids, max_new_tokens=answer_tokens)
        rows["full"]["prompt_tokens"].append(len(ids))
        if gold is not None:
            rows["full"]["f1"].append(f1(full.text, gold))
        for v in variants:
            _, _, rule, ratio = VARIANTS[v]
            spans = spans_for(cc, groups, q, v)
            assert [t for s in spans for t in s.ids] == ids
            c = comp.compose(lm.model, spans, ratio=ratio, rule=rule)
            g = generate_ids(lm, c.ids, cache=c.cache, first_logits=c.logits,
                             max_new_tokens=answer_tokens)
            r = rows[v]
            r["top1"].append(float(g.token_ids[:1] == full.token_ids[:1]))
            r["exact"].append(float(g.token_ids == full.token_ids))
            r["recomputed"].append(c.recomputed_tokens / max(1, c.cached_tokens +
                                                              c.recomputed_tokens))
            if gold is not None:
                r["f1"].append(f1(g.text, gold))
        if n % 20 == 0:
            print(f"  {n}/{len(items)} questions", file=sys.stderr, flush=True)
    out = {}
    for v, r in rows.items():
        out[v] = {k: round(statistics.mean(x), 4) for k, x in r.items() if x}
    out["questions"] = len(items)
    return out


def locomo_items(cube, enc, lm, qa_files: list[Path], n: int, k: int,  # type: ignore[no-untyped-def]
                 group: str) -> list:  # type: ignore[type-arg]
    items = []
    per = max(1, n // len(qa_files)) + 1
    for path in qa_files:
        data = json.loads(path.read_text("utf-8"))
        qs = [q for q in data["qa"] if q.get("category") in (1, 2, 3, 4) and "answer" in q]
        for q in qs[:per]:
            found = [r.memory for r in search(cube, enc, q["question"], k).hits]
            groups = [[m] for m in found] if group == "memory" else _groups(cube, found, group)
            items.append((q["question"], groups, str(q["answer"])))
    return items[:n]


def _groups(cube, found: list, group: str) -> list:  # type: ignore[no-untyped-def, type-arg]
    from memos_cli.cube.chunks import group_key

    by_key = collections.defaultdict(list)
    for m in cube.memories:
        by_key[group_key(m, group)].append(m)
    out, seen = [], set()
    for m in found:
        gk = group_key(m, group)
        if gk not in seen:
            seen.add(gk)
            out.append(by_key[gk])
    return out


def ttft(lm, enc, cube_path: Path, questions: list[str], ks: tuple[int, ...],  # type: ignore[no-untyped-def]
         ratios: tuple[float, ...] = (chunks.DEFAULT_RATIO,)) -> list:  # type: ignore[type-arg]
    """Median TTFT of the product paths: plaintext tier against kv chunks (every retrieved
    memory cached), both from the retrieved memories to the first token; and where the kv
    path's time goes (medians of its parts: chunk reads, re-rotation, the selection pass, the
    pass over the fresh and recomputed tokens; the rest is the first token's sampling)."""
    cube = open_cube(cube_path)
    need = {r.memory.id for q in questions for r in search(cube, enc, q, max(ks)).hits}
    mems = [m for m in cube.memories if m.id in need]
    convert_to_chunks(cube_path, lm, mems)
    cube = open_cube(cube_path)
    rows = []
    for k in ks:
        for ratio in ratios:
            text, kv, hits = [], [], []
            parts: dict[str, list[float]] = collections.defaultdict(list)
            for q in questions:
                found = [r.memory for r in search(cube, enc, q, k).hits]
                answer_memories(lm, found, q, max_new_tokens=1)  # warm
                text.append(answer_memories(lm, found, q, max_new_tokens=1).ttft_s)
                a = chunks.answer_chunked(cube, enc, lm, q, k=k, ratio=ratio,
                                          max_new_tokens=1)
                kv.append(a.timings["ttft_s"])
                hits.append(a.details["hits"])
                for part in ("chunk_load_s", "rerotate_s", "select_s", "recompute_s"):
                    parts[part].append(a.timings[part])
            rows.append({"k": k, "recompute_ratio": ratio, "questions": len(questions),
                         "text_ttft_s": round(statistics.median(text), 4),
                         "kv_ttft_s": round(statistics.median(kv), 4),
                         "ratio": round(statistics.median(kv) / statistics.median(text), 3),
                         "hits": statistics.mean(hits),
                         "kv_parts_s": {p: round(statistics.median(v), 4)
                                        for p, v in parts.items()}})
            print(f"  ttft: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


def render(res: dict, out: Path) -> None:  # type: ignore[type-arg]
    """Write kv_chunks.md (the README's tables) and docs/kv_chunks.png from a result."""
    lines = [f"{res['model']}, {res['machine']}, {res['date']}; k = {res['k']}, "
             f"{res['answer_tokens']} greedy tokens.", ""]
    for name in ("locomo_memory", "locomo_memory_k3", "locomo_session_k3", "docs_memory",
                 "docs_section_k3"):
        block = res.get(name)
        if not block:
            continue
        full = block["full"]
        lines += [f"**{name}** ({block['questions']} questions, full prompt "
                  f"{full['prompt_tokens']:.0f} tokens"
                  + (f", full-prefill token-F1 {full['f1']:.3f}" if "f1" in full else "") + ")",
                  "", "| variant | recomputed | next-token top-1 | exact answer | token-F1 |",
                  "|---|---|---|---|---|"]
        for v, r in block.items():
            if v in ("full", "questions"):
                continue
            f1s = f"{r['f1']:.3f}" if "f1" in r else "-"
            lines.append(f"| {v} | {r['recomputed']:.0%} | {r['top1']:.3f} | "
                         f"{r['exact']:.3f} | {f1s} |")
        lines.append("")
    for name in ("ttft_locomo", "ttft_docs"):
        if res.get(name):
            lines += [f"**{name}**", "",
                      "| k | recompute | text TTFT | kv TTFT | kv / text |",
                      "|---|---|---|---|---|"]
            lines += [f"| {r['k']} | {r.get('recompute_ratio', 0.15):.0%} | "
                      f"{r['text_ttft_s']:.3f} s | {r['kv_ttft_s']:.3f} s | {r['ratio']:.2f} |"
                      for r in res[name]]
            lines.append("")
    (out / "kv_chunks.md").write_text("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    block = res.get("locomo_memory")
    if not block:
        return
    pts = [(r["recomputed"], r["top1"], r.get("f1", 0.0), v) for v, r in block.items()
           if v == "prefix" or (v.startswith("dev-") and not v.endswith("alone"))]
    pts.sort()
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    ax[0].plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="next-token top-1")
    ax[0].plot([p[0] for p in pts], [p[2] for p in pts], "s-", label="token-F1 vs gold")
    for v, r in block.items():
        if v.startswith("first-"):
            ax[0].plot([r["recomputed"]], [r["top1"]], "x", c="k", label=f"{v} top-1 (EPIC)")
    ax[0].axhline(block["full"].get("f1", 0.0), ls="--", c="gray", label="full prefill F1")
    ax[0].set_xlabel("share of cached chunk tokens recomputed")
    ax[0].set_title("LoCoMo, k = 10 turns: deviation recompute (CacheBlend)")
    ax[0].legend()
    for name, mark in (("ttft_locomo", "o-"), ("ttft_docs", "s-")):
        for ratio in sorted({r.get("recompute_ratio", 0.15) for r in res.get(name, [])}):
            rows = [r for r in res[name] if r.get("recompute_ratio", 0.15) == ratio]
            ax[1].plot([r["k"] for r in rows], [r["ratio"] for r in rows], mark,
                       label=f"{name.removeprefix('ttft_')}, recompute {ratio:.0%}")
    ax[1].set_xlabel("k (retrieved memories)")
    ax[1].set_ylabel("kv TTFT / text TTFT")
    ax[1].set_title("time to first token")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "kv_chunks.png", dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--locomo", type=Path, default=ROOT.parent / "shared/datasets/locomo")
    ap.add_argument("--docs", type=Path, default=Path("/usr/share/doc/nodejs/api"))
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--doc-questions", type=int, default=60)
    ap.add_argument("--session-questions", type=int, default=40)
    ap.add_argument("--ttft-questions", type=int, default=15)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--answer-tokens", type=int, default=24)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--parts", default="locomo,session,ttft,docs",
                    help="comma-separated: locomo, session, ttft, docs, docs-section")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out")
    ap.add_argument("--render", type=Path, help="only render tables and plot from this JSON")
    ap.add_argument("--ttft-ratios", default=None,
                    help="comma-separated recompute ratios for the TTFT part [default: the "
                         "default ratio]")
    args = ap.parse_args()
    if args.render:
        render(json.loads(args.render.read_text()), args.out)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    variants = [v for v in args.variants.split(",") if v]
    parts = set(args.parts.split(","))
    ratios = tuple(float(r) for r in args.ttft_ratios.split(",")) if args.ttft_ratios else (
        chunks.DEFAULT_RATIO,)
    torch.manual_seed(0)
    lm = chat.load(None, device="cpu")
    enc = Embedder()
    cc = ChunkCache(lm)
    res: dict = {"machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),  # type: ignore[type-arg]
                 "model": lm.name, "k": args.k, "answer_tokens": args.answer_tokens}
    t0 = time.time()

    def save() -> None:
        res["wall_s"] = round(time.time() - t0, 1)
        (args.out / "kv_chunks.json").write_text(json.dumps(res, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        files = sorted(args.locomo.glob("*.json"))
        cube_path = Path(tmp) / "locomo.memcube"
        pack(files, cube_path, embedder=enc, defaults=Defaults(now=NOW))
        cube = open_cube(cube_path)
        qs = [q["question"] for f in files for q in json.loads(f.read_text())["qa"]
              if q.get("category") in (1, 2, 3, 4)][: args.ttft_questions]
        if "ttft" in parts:
            res["ttft_locomo"] = ttft(lm, enc, cube_path, qs, (5, 10, 20), ratios)
            save()
            cube = open_cube(cube_path)
        if "locomo" in parts:
            items = locomo_items(cube, enc, lm, files, args.questions, args.k, "memory")
            print(f"locomo, memory granularity: {len(items)} questions", file=sys.stderr)
            res["locomo_memory"] = fidelity(lm, cc, items, variants, args.answer_tokens)
            save()
        if "session" in parts and args.session_questions:
            few = ["rerotate", "prefix", "dev-15-alone", "dev-15", "dev-30"]
            items = locomo_items(cube, enc, lm, files, args.session_questions, 3, "session")
            print(f"locomo, session granularity (k=3): {len(items)}", file=sys.stderr)
            res["locomo_session_k3"] = fidelity(lm, cc, items, few, args.answer_tokens)
            items = locomo_items(cube, enc, lm, files, args.session_questions, 3, "memory")
            res["locomo_memory_k3"] = fidelity(lm, cc, items, few, args.answer_tokens)
            save()
        docs = sorted(args.docs.glob("*.md"))[:12] if args.docs.is_dir() else []
        docs = docs if parts & {"docs", "docs-section"} else []
        if docs:
            dpath = Path(tmp) / "docs.memcube"
            pack(docs, dpath, embedder=enc, defaults=Defaults(now=NOW))
            dcube = open_cube(dpath)
            heads = list(dict.fromkeys(m.section.split(" > ")[-1] for m in dcube.memories
                                       if m.section))
            dq = [f"What does the documentation say about {h}?" for h in heads]
            dq = dq[:: max(1, len(dq) // args.doc_questions)][: args.doc_questions]
            ditems = []
            for q in dq:
                found = [r.memory for r in search(dcube, enc, q, args.k).hits]
                ditems.append((q, [[m] for m in found], None))
            print(f"docs: {len(ditems)} questions", file=sys.stderr)
            res["docs_tokens_per_memory"] = round(statistics.mean(
                len(prompt.chunk_ids(lm.tokenizer, [m])) for m in dcube.memories), 1)
            if "docs" in parts:
                res["docs_memory"] = fidelity(lm, cc, ditems, ["prefix", "dev-15", "dev-30"],
                                              args.answer_tokens)
                save()
                if "ttft" in parts:
                    res["ttft_docs"] = ttft(lm, enc, dpath, dq[: args.ttft_questions],
                                            (5, 10, 20), ratios)
            if "docs-section" in parts:
                sitems = [(q, _groups(dcube, [m for g in groups for m in g][:3], "section"),
                           None) for q, groups, _ in ditems]
                res["docs_section_k3"] = fidelity(lm, cc, sitems, variants,
                                                  args.answer_tokens)
    save()
    render(res, args.out)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
