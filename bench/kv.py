"""Activation-tier benchmark: time to first token, text tier against kv tier, on the default
model (SmolLM2-135M-Instruct) and this machine's CPU.

Memory prefixes are LoCoMo dialog turns (conversation 26) packed into a cube, cut at about
500, 1000, 2000 and 4000 tokens. Measured, medians over --runs runs:

- text TTFT: ``generate`` over the whole prompt (SDPA attention; transformers computes only
  the last position's logits in the prefill, ``logits_to_keep=1``), one new token;
- kv TTFT per storage dtype: from the loaded segment to the first token (cache assembly,
  question prefill), plus the segment's load time from a warm page cache;
- the physical limit: the question's prefill over the same cache already assembled in memory;
- build time of a segment against one text prefill of the same tokens;
- load time against reading the same file's bytes with plain Python I/O;
- bytes per memory token, and greedy-answer agreement of each dtype with float32 over a
  question set; composition agreement (naive, re-rotation, re-rotation + recompute) with full
  recompute of the concatenated text.

Usage: python bench/kv.py [--locomo DIR] [--runs 5] [--questions 100]
       [--composition-questions 30] [--out bench/out]
Writes bench/out/kv.json, bench/out/kv.md and docs/ttft.png.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.retrieval import machine  # noqa: E402
from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.cube.kv import QUANT_INT8, Segment, SegmentMeta, read_segment, write_segment  # noqa: E402
from memos_cli.lifecycle.pack import pack  # noqa: E402
from memos_cli.models import chat  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.sources import Defaults  # noqa: E402
from memos_cli.tiers import kv  # noqa: E402
from memos_cli.tiers.decode import generate  # noqa: E402
from memos_cli.tiers.plaintext import build_messages  # noqa: E402

TARGETS = (500, 1000, 2000, 4000)
DTYPES = ("float32", "bfloat16", "float16", "int8")


def with_dtype(meta: SegmentMeta, dtype: str) -> SegmentMeta:
    return dataclasses.replace(meta, storage_dtype=dtype,
                               quantization=QUANT_INT8 if dtype == "int8" else "none")


def median_time(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    out = []
    for _ in range(runs):
        out.append(fn())
    return statistics.median(out)


def take_prefix(lm: chat.ChatModel, mems: list, target: int) -> list:  # type: ignore[type-arg]
    lo, hi = 1, len(mems)
    while lo < hi:  # smallest count whose prefix reaches the target
        mid = (lo + hi) // 2
        if len(kv.prefix_ids(lm.tokenizer, mems[:mid])) >= target:
            hi = mid
        else:
            lo = mid + 1
    return mems[:lo]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--locomo", type=Path, default=ROOT.parent / "shared/datasets/locomo")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--questions", type=int, default=100,
                    help="questions for the dtype agreement")
    ap.add_argument("--composition-questions", type=int, default=30)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    lm = chat.load(None)
    question = "What did Caroline research for her career?"
    result: dict = {"machine": machine(), "date": datetime.now(timezone.utc).strftime(
        "%Y-%m-%d"), "model": lm.name, "runs": args.runs, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        cube_path = Path(tmp) / "conv.memcube"
        pack([args.locomo / "26.json"], cube_path, embedder=Embedder(),
             defaults=Defaults(now=datetime(2026, 1, 1, tzinfo=timezone.utc)))
        mems = open_cube(cube_path).memories
        suffix = kv.suffix_ids(lm.tokenizer, question)
        for target in TARGETS:
            part = take_prefix(lm, mems, target)
            msgs = build_messages(question, part)
            generate(lm, msgs, max_new_tokens=1)  # warm-up
            text = median_time(lambda msgs=msgs: generate(lm, msgs, max_new_tokens=1).ttft_s,
                               args.runs)

            def build(part=part):  # type: ignore[no-untyped-def]
                t0 = time.perf_counter()
                built = kv.build_segment(lm, part, "float32")
                return time.perf_counter() - t0, built

            build_s = statistics.median(build()[0] for _ in range(max(1, args.runs // 2)))
            meta, ids, layers = build()[1]
            n = meta.num_tokens
            # the physical limit: the question's prefill over the cache already in memory
            cache, _ = kv.compose(lm, [Segment(meta, ids, layers)])

            def limit(cache=cache) -> float:  # type: ignore[no-untyped-def]
                t0 = time.perf_counter()
                with torch.inference_mode():
                    lm.model(input_ids=torch.tensor([suffix]), past_key_values=cache,
                             use_cache=True, logits_to_keep=1)
                took = time.perf_counter() - t0
                cache.crop(-len(suffix))
                return took

            limit()
            limit_s = median_time(limit, args.runs)
            row = {"target_tokens": target, "prefix_tokens": n, "memories": len(part),
                   "text_ttft_s": round(text, 4), "limit_s": round(limit_s, 4),
                   "build_s": round(build_s, 4), "kv": {}}
            for dtype in DTYPES:
                path = Path(tmp) / f"seg-{target}-{dtype}.safetensors"
                write_segment(path, with_dtype(meta, dtype), ids, layers)
                path.read_bytes()  # warm the page cache

                def load(path=path) -> float:  # type: ignore[no-untyped-def]
                    t0 = time.perf_counter()
                    seg = read_segment(path)
                    for k, v in seg.layers:  # touch every byte (safetensors maps lazily)
                        k.sum(), v.sum()
                    return time.perf_counter() - t0

                def read_raw(path=path) -> float:  # type: ignore[no-untyped-def]
                    t0 = time.perf_counter()
                    with open(path, "rb") as f:
                        f.read()
                    return time.perf_counter() - t0

                seg = read_segment(path)
                kv.generate_with_segments(lm, [seg], question, max_new_tokens=1)
                ttft = median_time(lambda seg=seg: kv.generate_with_segments(
                    lm, [seg], question, max_new_tokens=1).generation.ttft_s, args.runs)
                row["kv"][dtype] = {
                    "ttft_s": round(ttft, 4), "load_s": round(median_time(load, args.runs), 4),
                    "page_cache_read_s": round(median_time(read_raw, args.runs), 4),
                    "bytes": path.stat().st_size,
                    "bytes_per_token": round(path.stat().st_size / n, 1)}
                path.unlink()
            result["rows"].append(row)
            print(json.dumps(row), flush=True)
        result["agreement"] = agreement(lm, mems, args)
        result["composition"] = composition(lm, mems, args)
    (args.out / "kv.json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(result, args.out / "kv.md")
    plot(result, ROOT / "docs" / "ttft.png")
    print((args.out / "kv.md").read_text())


def questions(args: argparse.Namespace, n: int) -> list[str]:
    qa = json.loads((args.locomo / "26.json").read_text())["qa"]
    return [q["question"] for q in qa if q.get("category") in (1, 2, 3, 4)][:n]


def agreement(lm: chat.ChatModel, mems: list, args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    """Greedy answers (32 tokens) of each dtype against float32, over ~1000-token prefix."""
    part = take_prefix(lm, mems, 1000)
    meta, ids, layers = kv.build_segment(lm, part, "float32")
    out: dict[str, dict[str, float]] = {}
    answers: dict[str, list[list[int]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in DTYPES:
            path = Path(tmp) / f"{dtype}.safetensors"
            write_segment(path, with_dtype(meta, dtype), ids, layers)
            seg = read_segment(path)
            answers[dtype] = [kv.generate_with_segments(lm, [seg], q, max_new_tokens=32)
                              .generation.token_ids for q in questions(args, args.questions)]
    for dtype in DTYPES[1:]:
        same = [a == b for a, b in zip(answers[dtype], answers["float32"], strict=True)]
        out[dtype] = {"exact_answer_agreement": round(sum(same) / len(same), 3),
                      "questions": len(same)}
    return out


def composition(lm: chat.ChatModel, mems: list, args: argparse.Namespace) -> dict:  # type: ignore[type-arg]
    """Three independently built segments of ~400 tokens each, composed, against full
    recompute of the concatenated text: next-token top-1 agreement and exact greedy answers."""
    parts, rest = [], list(mems)
    for _ in range(3):
        p = take_prefix(lm, rest, 400)
        parts.append(p)
        rest = rest[len(p):]
    segs = [Segment(*kv.build_segment(lm, p)) for p in parts]
    prefix = [t for p in parts for t in kv.prefix_ids(lm.tokenizer, p)]
    modes = {"naive concatenation": ("naive", 0), "re-rotation": ("rerotate", 0),
             "re-rotation + recompute 16 tokens": ("rerotate", 16)}
    top1 = {m: 0 for m in modes}
    exact = {m: 0 for m in modes}
    qs = questions(args, args.composition_questions)
    for q in qs:
        ids = prefix + kv.suffix_ids(lm.tokenizer, q)
        with torch.inference_mode():
            ref = generate_full(lm, ids)
        for name, (mode, redo) in modes.items():
            got = kv.generate_with_segments(lm, segs, q, max_new_tokens=24, mode=mode,
                                            recompute=redo).generation.token_ids
            top1[name] += int(got[:1] == ref[:1])
            exact[name] += int(got == ref)
    return {name: {"top1_agreement": round(top1[name] / len(qs), 3),
                   "exact_answer_agreement": round(exact[name] / len(qs), 3),
                   "questions": len(qs), "segments": 3,
                   "tokens": len(prefix)} for name in modes}


def generate_full(lm: chat.ChatModel, ids: list[int]) -> list[int]:
    from memos_cli.tiers.decode import generate_ids

    return generate_ids(lm, ids, max_new_tokens=24).token_ids


def write_report(r: dict, path: Path) -> None:
    lines = [f"Machine: {r['machine']}; {r['date']}; model {r['model']}; medians of "
             f"{r['runs']} runs.", "",
             "| prefix tokens | text TTFT s | kv TTFT s (float32) | kv/text | limit s | "
             "kv/limit | build s | bf16 TTFT | fp16 TTFT | int8 TTFT |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        k = row["kv"]
        f32 = k["float32"]["ttft_s"]
        lines.append(
            f"| {row['prefix_tokens']} | {row['text_ttft_s']:.3f} | {f32:.3f} | "
            f"{100 * f32 / row['text_ttft_s']:.1f}% | {row['limit_s']:.3f} | "
            f"{f32 / row['limit_s']:.2f}x | {row['build_s']:.3f} | "
            f"{k['bfloat16']['ttft_s']:.3f} | {k['float16']['ttft_s']:.3f} | "
            f"{k['int8']['ttft_s']:.3f} |")
    lines += ["", "| prefix tokens | dtype | bytes/token | load s | page-cache read s | "
              "load/read |", "|---|---|---|---|---|---|"]
    for row in r["rows"]:
        for dtype, k in row["kv"].items():
            lines.append(f"| {row['prefix_tokens']} | {dtype} | {k['bytes_per_token']:,.0f} | "
                         f"{k['load_s']:.4f} | {k['page_cache_read_s']:.4f} | "
                         f"{k['load_s'] / max(k['page_cache_read_s'], 1e-9):.2f}x |")
    lines += ["", "| storage dtype | exact greedy-answer agreement with float32 |", "|---|---|"]
    for dtype, a in r["agreement"].items():
        lines.append(f"| {dtype} | {a['exact_answer_agreement']:.3f} ({a['questions']} "
                     "questions) |")
    lines += ["", "| composition of 3 segments | next-token top-1 agreement | exact answer "
              "agreement |", "|---|---|---|"]
    for name, a in r["composition"].items():
        lines.append(f"| {name} | {a['top1_agreement']:.3f} | "
                     f"{a['exact_answer_agreement']:.3f} |")
    path.write_text("\n".join(lines) + "\n")


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [row["prefix_tokens"] for row in r["rows"]]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.plot(xs, [row["text_ttft_s"] for row in r["rows"]], "o-", label="text tier (prefill)")
    for dtype in DTYPES:
        ax.plot(xs, [row["kv"][dtype]["ttft_s"] for row in r["rows"]], ".-",
                label=f"kv tier, {dtype}")
    ax.plot(xs, [row["limit_s"] for row in r["rows"]], "k--", label="limit: question prefill")
    ax.set_xlabel("memory prefix (tokens)")
    ax.set_ylabel("time to first token (s, median)")
    ax.set_yscale("log")
    ax.set_title(f"{r['model']}, 2 CPU cores")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


if __name__ == "__main__":
    main()
