"""MemReader benchmark on LoCoMo: evidence recall@1/5/10 per reader and combination, by
question category, on tuning and held-apart conversations; reader time per 1,000 turns; search
latency.

Each conversation is packed once without readers; each reader then runs once over its
memories (timed: seconds per 1,000 turns, the embedding of its rows included), and every
combination is written as a cube (``write_cube`` with the readers' rows and derived
memories) and searched with every question of categories 1-4. Recall@k: the fraction of a
question's evidence turns (``D1:3``) among the turns of the top k results (derived memories
resolve to their source turns, as ``memos search`` shows them).

Tuning: the reader options and prompts were chosen on conversations 26, 30 and 41 (``--tune``);
42 and 43 were not looked at until the final run, and are reported apart (``held apart``).
The fusion weights of the index (k = 10, w_text = 1.5) were chosen earlier on all five.

Usage:  python bench/readers.py [--readers context,questions,facts] [--out bench/out]
        [--context-before 1 --context-after 1] [--model PATH]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from retrieval import KS, evidence_ids, machine, recall, search  # noqa: E402

from memos_cli.cube import CubeSpec, open_cube, write_cube  # noqa: E402
from memos_cli.lifecycle.pack import embed_memories, embed_rows, pack  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.readers import Budget, ReaderRun, run_readers  # noqa: E402
from memos_cli.sources import Defaults  # noqa: E402
from memos_cli.validity import View  # noqa: E402

TUNE = ("26", "30", "41")
CATEGORIES = (1, 2, 3, 4)


def cache_generations(path: Path) -> None:
    """Wrap ``readers.generate.generate`` so that each (prefix, suffix, max_new_tokens) is
    generated once and kept in ``path``."""
    import hashlib

    from memos_cli.readers import facts, generate, questions

    store: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    real = generate.generate

    def cached(chat, prefix, suffixes, *, max_new_tokens, **kw):  # type: ignore[no-untyped-def]
        keys = [hashlib.sha256(f"{max_new_tokens}\0{prefix}\0{s}".encode()).hexdigest()
                for s in suffixes]
        todo = [i for i, k in enumerate(keys) if k not in store]
        if todo:
            got = real(chat, prefix, [suffixes[i] for i in todo],
                       max_new_tokens=max_new_tokens, **kw)
            for i, text in zip(todo, got, strict=True):
                if text is not None:
                    store[keys[i]] = text
            path.write_text(json.dumps(store))
        return [store.get(k) for k in keys]

    questions.generate = cached  # type: ignore[assignment]
    facts.generate = cached  # type: ignore[assignment]


def combos(names: list[str]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = [()]
    for n in range(1, len(names) + 1):
        out += list(itertools.combinations(names, n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--locomo", type=Path, default=ROOT.parent / "shared/datasets/locomo")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out")
    ap.add_argument("--readers", default="context,questions,facts")
    ap.add_argument("--context-before", type=int, default=None)
    ap.add_argument("--context-after", type=int, default=None)
    ap.add_argument("--context-chars", type=int, default=None)
    ap.add_argument("--min-relevance", type=float, default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--only", default=None, help="comma-separated conversation ids")
    ap.add_argument("--tag", default="readers")
    ap.add_argument("--cache", type=Path, default=None,
                    help="keep the model readers' raw generations in this JSON file and reuse "
                         "them (for trying parsers and filters; reader times then mean "
                         "nothing)")
    args = ap.parse_args()
    if args.cache is not None:
        cache_generations(args.cache)
    files = sorted(args.locomo.glob("*.json"))
    if args.only:
        files = [f for f in files if f.stem in args.only.split(",")]
    names = [n for n in args.readers.split(",") if n]
    options = {"context": {k: v for k, v in (("before", args.context_before),
                                              ("after", args.context_after),
                                              ("neighbour_chars", args.context_chars))
                            if v is not None},
               "questions": {} if args.min_relevance is None else
               {"min_relevance": args.min_relevance}}
    embedder = Embedder()
    chat = None
    if set(names) & {"questions", "facts"}:
        from memos_cli.models.chat import load

        chat = load(args.model)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    # results[combo][split][category or "all"][k] -> list of recall values
    results: dict[str, dict[str, dict[str, dict[int, list[float]]]]] = {}
    reader_s: dict[str, list[float]] = {n: [] for n in names}
    reader_counts: dict[str, dict[str, int]] = {n: {} for n in names}
    latencies: dict[str, list[float]] = {}
    turns = {"tune": 0, "held apart": 0}
    questions = {"tune": 0, "held apart": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            split = "tune" if f.stem in TUNE else "held apart"
            base = Path(tmp) / f"{f.stem}.memcube"
            pack([f], base, embedder=embedder, defaults=Defaults(now=now))
            cube = open_cube(base)
            own = list(cube.memories)
            turns[split] += len(own)
            vectors = embed_memories(embedder, own)
            runs = {}
            for n in names:
                t0 = time.perf_counter()
                run = run_readers([n], own, chat=chat, budget=Budget(), options=options,
                                  embedder=embedder)
                rows = embed_rows(embedder, run.rows())
                derived_vecs = embed_memories(embedder, run.memories) if run.memories else None
                reader_s[n].append((time.perf_counter() - t0) / len(own) * 1000)
                rec = run.records()[0]
                for key in ("index_rows", "derived_memories", "unparsed", "not_reached"):
                    reader_counts[n][key] = reader_counts[n].get(key, 0) + rec[key]
                runs[n] = (run, rows, derived_vecs)
                print(f"{f.stem}: {n} {rec}", flush=True)
            data = json.loads(f.read_text())
            qs = [q for q in data["qa"] if q.get("category") in CATEGORIES
                  and evidence_ids(q)]
            questions[split] += len(qs)
            for combo in combos(names):
                label = "+".join(combo) or "none"
                mems = own + [m for n in combo for m in runs[n][0].memories]
                vecs = np.concatenate([vectors] + [runs[n][2] for n in combo
                                                   if runs[n][2] is not None])
                rows = None
                if combo:
                    merged = ReaderRun([r for n in combo for r in runs[n][0].results]).rows()
                    merged.vectors = np.concatenate(
                        [runs[n][1].vectors for n in combo if runs[n][1].vectors is not None])
                    rows = merged
                path = Path(tmp) / f"{f.stem}-{label}.memcube"
                write_cube(path, mems, vecs, CubeSpec(
                    name=label, created_at=now, embedding=embedder.describe(),
                    readers=[r for n in combo for r in runs[n][0].records()],
                    reader_rows=rows))
                c = open_cube(path)
                search(c, embedder, "warm-up query", 10)
                per = results.setdefault(label, {}).setdefault(split, {})
                for q in qs:
                    result = search(c, embedder, q["question"], max(KS), View(now=now))
                    latencies.setdefault(label, []).append(result.search_s)
                    found = [h.memory.turn_id or "" for h in result.hits]
                    for key in ("all", str(q["category"])):
                        for k, v in recall(found, evidence_ids(q)).items():
                            per.setdefault(key, {}).setdefault(k, []).append(v)
    summary = {
        "machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "tune_conversations": [f.stem for f in files if f.stem in TUNE],
        "held_apart_conversations": [f.stem for f in files if f.stem not in TUNE],
        "turns": turns, "questions": questions, "options": options,
        "reader_s_per_1000_turns_median": {n: round(statistics.median(v), 1)
                                           for n, v in reader_s.items() if v},
        "reader_counts": reader_counts,
        "search_ms_p50": {c: round(float(np.percentile(v, 50)) * 1000, 1)
                          for c, v in latencies.items()},
        "recall": {c: {s: {key: {str(k): round(float(np.mean(v)), 3) for k, v in ks.items()}
                           for key, ks in sorted(per.items())} for s, per in splits.items()}
                   for c, splits in results.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.tag}.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [f"Machine: {summary['machine']}; {summary['date']}. Tuning conversations "
             f"{', '.join(summary['tune_conversations'])} ({turns['tune']} turns, "
             f"{questions['tune']} questions); held apart "
             f"{', '.join(summary['held_apart_conversations'])} ({turns['held apart']} turns, "
             f"{questions['held apart']} questions). Categories 1-4.", "",
             "| readers | split | R@1 | R@5 | R@10 | R@10 cat 1 | cat 2 | cat 3 | cat 4 "
             "| p50 ms |", "|---|---|---|---|---|---|---|---|---|---|"]
    for c, splits in summary["recall"].items():
        for s, per in splits.items():
            a = per["all"]
            cats = " | ".join(per.get(str(n), {}).get("10", float("nan")).__format__(".3f")
                              for n in CATEGORIES)
            lines.append(f"| {c} | {s} | {a['1']:.3f} | {a['5']:.3f} | {a['10']:.3f} | {cats} "
                         f"| {summary['search_ms_p50'][c]} |")
    lines += ["", "Reader time per 1,000 turns (median over conversations, rows embedded): "
              + ", ".join(f"{n} {v} s" for n, v in
                          summary["reader_s_per_1000_turns_median"].items()) + "."]
    (args.out / f"{args.tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
