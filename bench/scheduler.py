"""MemScheduler benchmark: replay LoCoMo question streams through `--tier auto` with the
scheduler filling the KV chunk store by use, per byte budget and policy, on the default model
(SmolLM2-135M-Instruct) and this machine.

Replay. Each LoCoMo conversation is packed into its own cube (one memory per turn). Its
questions (categories 1-4) are asked in order, one per simulated hour (the decay half-life is
the default 7 days); each retrieves the top k = 10 memories as `memos run` does and records
their use in the cube's usage store. Every 20 questions the scheduler runs (`scheduler.plan`
and `scheduler.apply`, what `memos schedule` calls) with a budget of 0, 10, 25, 50 or 100% of
the bytes of every memory's chunk, under the policies decay, lfu, lru and memos (MemOS's own
rank-based score). At 100% every used memory fits, so the policies coincide and it runs once.

Measured per budget and policy:
- chunk hit rate: the share of retrieved memories that had a chunk in the store when asked,
  over every question (the first 20 of each conversation find an empty store);
- time to first token, mean and median, and the answers (greedy, `--answer-tokens`), of
  `answer_auto` (the `run --tier auto` path: stored chunks composed with 30% recomputed by
  deviation, the rest prefilled) on every `--model-every`-th question after the first
  schedule; the text tier (every memory prefilled) answers the same questions in the same run
  as the reference: exact-answer agreement and first-token agreement with it;
- bytes stored (the scope's chunks and prefix after the last schedule), the median time of
  one schedule (plan and apply), and the chunks it computed. Chunks are content-addressed, so
  a chunk computed for one configuration is linked into the next that promotes it, not
  computed again: `compute ms/chunk` gives the cost of computing one.

Part ``vault5000``: a vault of about 5,000 memories (the LoCoMo turns, then Node.js API doc
files that Debian's ``nodejs`` package installs until 5,000 is passed), one use per memory, then
`memos schedule --vault V --kv-budget 100%` (and 25%) as a command, wall time including the
model load and every chunk's computation.

Part ``usage``: what recording adds to a search (in process, medians).

Usage: python bench/scheduler.py [--model-every 8] [--answer-tokens 16]
       [--parts replay,usage,vault5000]
Writes bench/out/scheduler.json and bench/out/scheduler.md (the README's table).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.kv_chunks import f1  # noqa: E402
from bench.retrieval import machine, search  # noqa: E402
from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.lifecycle.pack import pack  # noqa: E402
from memos_cli.models import chat  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.models.fingerprint import fingerprint_digest  # noqa: E402
from memos_cli.scheduler import policy as scheduler  # noqa: E402
from memos_cli.scheduler.auto import answer_auto, store_sources  # noqa: E402
from memos_cli.scheduler.chunks import ChunkStore  # noqa: E402
from memos_cli.scheduler.usage import UsageStore, Use, uses_of  # noqa: E402
from memos_cli.sources import Defaults  # noqa: E402
from memos_cli.tiers import prompt  # noqa: E402
from memos_cli.tiers.plaintext import answer_memories, retrieve  # noqa: E402

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
K = 10
EVERY = 20
DTYPE = "float16"
BUDGETS = (0.0, 0.10, 0.25, 0.50, 1.0)


def first_token(lm, text: str) -> list[int]:  # type: ignore[no-untyped-def]
    return lm.tokenizer(text, add_special_tokens=False)["input_ids"][:1]


def oracle(conv: dict, lm, frac: float) -> float:  # type: ignore[no-untyped-def, type-arg]
    """The hit rate of a scheduler that knows the next 20 questions' memories (a bound, not a
    policy): at each schedule it stores the memories those questions retrieve most often per
    byte, within the same budget."""
    from collections import Counter

    cube, items = conv["cube"], conv["items"]
    by = {m.id: m for m in cube.memories}
    chunk_bytes, prefix_bytes = scheduler.estimator(lm, cube.memories, DTYPE)
    budget = int(frac * (prefix_bytes + sum(chunk_bytes(m) for m in cube.memories)))
    hot: set[str] = set()
    hits = total = 0
    for i, (_, found) in enumerate(items):
        if i and i % EVERY == 0:
            want = Counter(r.memory.id for _, f in items[i:i + EVERY] for r in f)
            hot, used = set(), prefix_bytes
            for mid, _n in sorted(want.items(), key=lambda kv: -kv[1] / chunk_bytes(by[kv[0]])):
                if used + chunk_bytes(by[mid]) <= budget:
                    hot.add(mid)
                    used += chunk_bytes(by[mid])
        hits += sum(r.memory.id in hot for r in found)
        total += len(found)
    return hits / total


def key(m) -> str:  # type: ignore[no-untyped-def]
    return m.content_hash.removeprefix("sha256:")


def link_into(src_set, dst_set, keys) -> None:  # type: ignore[no-untyped-def]
    for k in keys:
        src, dst = src_set.chunk(k), dst_set.chunk(k)
        if src.is_file() and not dst.exists():
            os.link(src, dst)


def replay(conv: dict, lm, cfg: tuple[float, str], work: Path, shared, refs: dict,  # type: ignore[no-untyped-def, type-arg]
           answer_tokens: int) -> dict:  # type: ignore[type-arg]
    frac, policy = cfg
    cube, items = conv["cube"], conv["items"]
    name = f"{conv['name']}-{int(frac * 100)}-{policy}"
    usage = UsageStore(work / name / "usage")
    store = ChunkStore(work / name / "chunks")
    digest = fingerprint_digest(lm.fingerprint())
    s = store.create_set(lm.name, digest, prompt.LAYOUT, DTYPE)
    chunk_bytes, prefix_bytes = scheduler.estimator(lm, cube.memories, DTYPE)
    budget = int(frac * (prefix_bytes + sum(chunk_bytes(m) for m in cube.memories)))
    hits = retrieved = computed = 0
    apply_s = 0.0
    sched_s: list[float] = []
    rows = []
    for i, (q, found) in enumerate(items):
        at = NOW + timedelta(hours=i)
        if budget and i and i % EVERY == 0:
            t0 = time.perf_counter()
            ind = usage.indicators(now=at)
            stored = scheduler.stored_for(s, "bench")
            pre = s.prefix.stat().st_size if s.prefix.is_file() else prefix_bytes
            p = scheduler.plan(cube.memories, ind, policy=policy, budget=budget,
                               chunk_bytes=chunk_bytes, stored=stored, key_of=key,
                               prefix_bytes=pre, now=at, k=K)
            link_into(shared, s, [d.key for d in p.of("promote")])
            scheduler.apply(p, lm, s, cube.memories, scope="bench")
            sched_s.append(time.perf_counter() - t0)
            apply_s += p.apply_s if p.computed else 0.0
            computed += p.computed
            link_into(s, shared, [d.key for d in p.of("promote")])
        have = [r for r in found if s.has(key(r.memory))]
        hits += len(have)
        retrieved += len(found)
        if i in refs:
            a = answer_auto(lm, q, found, store_sources(lm, store), max_new_tokens=answer_tokens)
            ref = refs[i]
            rows.append({"i": i, "ttft_s": a.timings["ttft_s"], "hits": a.details["hits"],
                         "exact": a.answer.strip() == ref["answer"].strip(),
                         "first": first_token(lm, a.answer) == first_token(lm, ref["answer"]),
                         "f1": f1(a.answer, ref["gold"])})
        usage.record("run", uses_of(found, [r.memory for r in found]), at=at)
    ttfts = [r["ttft_s"] for r in rows]
    return {"conversation": conv["name"], "budget": frac, "policy": policy,
            "budget_bytes": budget, "hits": hits, "retrieved": retrieved,
            "stored_bytes": s.prefix.stat().st_size + sum(
                scheduler.stored_for(s, "bench").values()) if s.prefix.is_file() else 0,
            "schedules": len(sched_s), "schedule_s_median": statistics.median(sched_s)
            if sched_s else 0.0, "computed": computed, "apply_s_computing": apply_s, "runs": rows,
            "ttft_mean": statistics.fmean(ttfts) if ttfts else None,
            "ttft_p50": statistics.median(ttfts) if ttfts else None}


def summarize(per_conv: list[dict], text: list[dict]) -> dict:  # type: ignore[type-arg]
    runs = [r for c in per_conv for r in c["runs"]]
    tt = [r["ttft_s"] for r in runs]
    return {"hit_rate": sum(c["hits"] for c in per_conv) / max(sum(c["retrieved"]
                                                                   for c in per_conv), 1),
            "ttft_mean": statistics.fmean(tt) if tt else None,
            "ttft_p50": statistics.median(tt) if tt else None,
            "exact": statistics.fmean(r["exact"] for r in runs) if runs else None,
            "first_token": statistics.fmean(r["first"] for r in runs) if runs else None,
            "f1": statistics.fmean(r["f1"] for r in runs) if runs else None,
            "runs": len(runs),
            "stored_mb": sum(c["stored_bytes"] for c in per_conv) / 1e6,
            "budget_mb": sum(c["budget_bytes"] for c in per_conv) / 1e6,
            "schedule_ms_median": 1000 * statistics.median(
                [c["schedule_s_median"] for c in per_conv]) if per_conv else 0.0,
            "computed": sum(c["computed"] for c in per_conv),
            "apply_s_computing": sum(c["apply_s_computing"] for c in per_conv)}


def vault5000(lm, enc, files: list[Path], docs: Path, work: Path,  # type: ignore[no-untyped-def]
              target: int = 5000) -> dict:  # type: ignore[type-arg]
    """Schedule a vault of about ``target`` memories (LoCoMo turns, then Node.js doc files
    until the count is reached) through the CLI."""
    env = {**os.environ, "MEMOS_HOME": str(work / "home"), "MEMOS_USER": "bench"}
    from memos_cli.sources import read_sources

    cube = work / "big.memcube"
    sources, count = list(files), 0
    count = sum(len(r.memories) for r in read_sources(sources, Defaults(now=NOW)).results)
    for doc in sorted(docs.glob("*.md")) if docs.is_dir() else []:
        if count >= target:
            break
        sources.append(doc)
        count += sum(len(r.memories) for r in read_sources([doc], Defaults(now=NOW)).results)
    pack(sources, cube, embedder=enc, defaults=Defaults(now=NOW))
    c = open_cube(cube)
    n = len(c.memories)
    vault = work / "vault"
    memos = str(Path(sys.executable).parent / "memos")
    subprocess.run([memos, "load", str(cube), "--vault", str(vault), "--allow-unsigned"],
                   env=env, check=True, capture_output=True)
    UsageStore(vault / "usage").record("search", [Use(m.id, m.content_hash, 1)
                                                  for m in c.memories])
    out: dict = {"memories": n}  # type: ignore[type-arg]
    for budget in ("25%", "100%"):  # from an empty store, then the rest
        t0 = time.perf_counter()
        r = subprocess.run([memos, "schedule", "--vault", str(vault), "--kv-budget", budget,
                            "--json"], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode:
            raise SystemExit(r.stderr)
        data = json.loads(r.stdout)
        out[budget] = {"wall_s": round(wall, 1), "computed": data["computed"],
                       "counts": data["counts"], "apply_s": data["apply_s"],
                       "stored_mb": data["stored_after"] / 1e6}
        print(f"vault {n} memories, {budget}: {out[budget]}", file=sys.stderr)
    return out


def usage_cost(enc, files: list[Path], work: Path, n: int = 60) -> dict:  # type: ignore[no-untyped-def, type-arg]
    """What recording adds to a search, in process: the search (retrieve, k = 10) and the
    printing of its table, with and without usage recording as `memos search` does it (the
    table opened in a thread during retrieval, the append in a thread during printing),
    alternated, ``n`` each; and the cold open plus append alone. The search here is the
    retrieval function itself (``tiers.plaintext.retrieve``), not ``Session.search``: this
    measures the recording that ``Session.search`` adds to it."""
    import io

    from rich.console import Console

    from memos_cli.scheduler.usage import record_quietly, recording

    cp = work / "usage-cost.memcube"
    pack(files[:1], cp, embedder=enc, defaults=Defaults(now=NOW))
    cube = open_cube(cp)
    store = UsageStore(work / "usage-cost")
    qs = [q["question"] for q in json.loads(files[0].read_text())["qa"]][: n]
    console = Console(file=io.StringIO(), width=120)

    def timed(q: str, record: bool) -> float:
        t0 = time.perf_counter()
        s = UsageStore(store.path).warm() if record else None  # as `memos search` does
        hits = retrieve(cube, enc, q, K)
        ctx = (recording(s, "search", uses_of(hits)) if s is not None
               else contextlib.nullcontext())
        with ctx:
            console.print("\n".join(f"{h.rank} {h.score:.4f} {h.memory.render()}" for h in hits))
        return time.perf_counter() - t0

    timed(qs[0], True)
    with_, without, alone = [], [], []
    for q in qs:
        without.append(timed(q, False))
        with_.append(timed(q, True))
        hits = retrieve(cube, enc, q, K)
        t0 = time.perf_counter()
        record_quietly(UsageStore(store.path), "search", uses_of(hits))  # opened cold
        alone.append(time.perf_counter() - t0)
    return {"searches": len(qs), "search_ms_p50": 1000 * statistics.median(without),
            "search_with_usage_ms_p50": 1000 * statistics.median(with_),
            "added_ms_p50": 1000 * statistics.median(
                [a - b for a, b in zip(with_, without, strict=True)]),
            "append_alone_ms_p50": 1000 * statistics.median(alone)}


def render(res: dict, out: Path) -> None:  # type: ignore[type-arg]
    lines = [f"Machine: {res['machine']}. {res['conversations']} LoCoMo conversations, "
             f"{res['questions']} questions replayed in order, k = {K}, schedule every {EVERY}; "
             f"model runs on {res['model_runs']} of them ({res['answer_tokens']} answer tokens).",
             "", "| budget | policy | hit rate | TTFT mean (s) | TTFT p50 (s) | share of 100%'s "
             "TTFT gain | first token = text | exact answer = text | token-F1 vs gold | "
             "stored (MB) | schedule p50 (ms) | chunks computed |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    text = res["text"]
    lines.append(f"| text tier | - | - | {text['ttft_mean']:.3f} | {text['ttft_p50']:.3f} | - | "
                 f"1 | 1 | {text['f1']:.3f} | 0 | - | - |")
    full = next(r for r in res["rows"] if r["budget"] == 1.0)
    gain_full = text["ttft_p50"] - full["ttft_p50"]
    for r in res["rows"]:
        share = (text["ttft_p50"] - r["ttft_p50"]) / gain_full if gain_full else float("nan")
        policy = "any (decay)" if r["budget"] == 1.0 else r["policy"]
        lines.append(f"| {r['budget']:.0%} | {policy} | {r['hit_rate']:.3f} | "
                     f"{r['ttft_mean']:.3f} | {r['ttft_p50']:.3f} | {share:.2f} | "
                     f"{r['first_token']:.3f} | {r['exact']:.3f} | {r['f1']:.3f} | "
                     f"{r['stored_mb']:.1f} | {r['schedule_ms_median']:.0f} | {r['computed']} |")
    if res.get("oracle"):
        lines.append("")
        lines.append("Hit rate of an oracle that knows the next 20 questions' memories (a bound, "
                     "not a policy), same budgets: " + ", ".join(
                         f"{float(b):.0%}: {v:.3f}" for b, v in res["oracle"].items()) + ".")
    if res.get("compute_ms_per_chunk"):
        lines.append("")
        lines.append(f"Apply time per computed chunk: {res['compute_ms_per_chunk']:.0f} ms "
                     "(batched computation and the write, over the replay's schedules).")
    u = res.get("usage")
    if u:
        lines.append("")
        lines.append(f"Recording usage, in process over {u['searches']} searches (k = {K}): "
                     f"search and print {u['search_ms_p50']:.1f} ms without, "
                     f"{u['search_with_usage_ms_p50']:.1f} ms with the append (median added "
                     f"{u['added_ms_p50']:.1f} ms; the append alone "
                     f"{u['append_alone_ms_p50']:.1f} ms).")
    v = res.get("vault5000")
    if v:
        lines.append("")
        lines.append(f"`memos schedule` on a {v['memories']}-memory vault, every memory used "
                     "once, the store empty at first: " + "; then ".join(
                         f"--kv-budget {b}: {v[b]['wall_s']} s wall ({v[b]['computed']} chunks "
                         f"computed, {v[b]['stored_mb']:.0f} MB stored)" for b in ("25%", "100%")
                         if b in v) + " (model load included).")
    (out / "scheduler.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--locomo", type=Path, default=ROOT.parent / "shared/datasets/locomo")
    ap.add_argument("--docs", type=Path, default=Path("/usr/share/doc/nodejs/api"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out")
    ap.add_argument("--model-every", type=int, default=8)
    ap.add_argument("--answer-tokens", type=int, default=8)
    ap.add_argument("--max-questions", type=int, default=0, help="per conversation; 0: all")
    ap.add_argument("--parts", default="replay,usage,vault5000")
    ap.add_argument("--render", type=Path, help="only render this scheduler.json")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.render:
        render(json.loads(args.render.read_text()), args.out)
        return
    old = args.out / "scheduler.json"
    parts = set(args.parts.split(","))
    files = sorted(args.locomo.glob("*.json"))
    lm = chat.load(None)
    enc = Embedder()
    res: dict = {"machine": machine(), "model": lm.name, "answer_tokens": args.answer_tokens,  # type: ignore[type-arg]
                 "conversations": len(files), "date": time.strftime("%Y-%m-%d")}
    if old.is_file() and "replay" not in parts:  # keep the parts not rerun
        res = {**json.loads(old.read_text()), **res}
    t_start = time.time()

    def save() -> None:
        res["wall_s"] = round(time.time() - t_start, 1)
        (args.out / "scheduler.json").write_text(json.dumps(res, indent=2) + "\n")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if "replay" in parts:
            convs = []
            for f in files:
                cp = work / f"{f.stem}.memcube"
                pack([f], cp, embedder=enc, defaults=Defaults(now=NOW))
                cube = open_cube(cp)
                qa = [q for q in json.loads(f.read_text())["qa"]
                      if q.get("category") in (1, 2, 3, 4) and "answer" in q]
                if args.max_questions:
                    qa = qa[:args.max_questions]
                items = [(q["question"], search(cube, enc, q["question"], K).hits) for q in qa]
                convs.append({"name": f.stem, "cube": cube, "items": items,
                              "gold": [str(q["answer"]) for q in qa]})
            res["questions"] = sum(len(c["items"]) for c in convs)
            q0, f0 = convs[0]["items"][0]
            answer_memories(lm, [r.memory for r in f0], q0, max_new_tokens=2)  # warm-up
            refs: dict[str, dict[int, dict]] = {}  # type: ignore[type-arg]
            text_runs: list[float] = []
            text_f1: list[float] = []
            for c in convs:
                refs[c["name"]] = {}
                for i, (q, found) in enumerate(c["items"]):
                    if i >= EVERY and i % args.model_every == 0:
                        g = answer_memories(lm, [r.memory for r in found], q,
                                            max_new_tokens=args.answer_tokens)
                        refs[c["name"]][i] = {"answer": g.text, "gold": c["gold"][i]}
                        text_runs.append(g.ttft_s)
                        text_f1.append(f1(g.text, c["gold"][i]))
            res["model_runs"] = len(text_runs)
            res["text"] = {"ttft_mean": statistics.fmean(text_runs),
                           "ttft_p50": statistics.median(text_runs),
                           "f1": statistics.fmean(text_f1)}
            res["oracle"] = {f"{b:.2f}": sum(oracle(c, lm, b) * len(c["items"]) for c in convs)
                             / res["questions"] for b in BUDGETS if b}
            print(f"text tier: {res['text']}", file=sys.stderr)
            shared = ChunkStore(work / "shared").create_set(
                lm.name, fingerprint_digest(lm.fingerprint()), prompt.LAYOUT, DTYPE)
            configs = [(0.0, "-"), (1.0, "decay")] + [(b, p) for b in (0.10, 0.25, 0.50)
                                                      for p in scheduler.POLICIES]
            res["rows"] = []
            for frac, policy in configs:
                t0 = time.perf_counter()
                per = [replay(c, lm, (frac, policy), work, shared, refs[c["name"]],
                              args.answer_tokens) for c in convs]
                row = {"budget": frac, "policy": policy, **summarize(per, text_runs),
                       "wall_s": round(time.perf_counter() - t0, 1)}
                res["rows"].append(row)
                print(f"{frac:.0%} {policy}: {row}", file=sys.stderr)
                save()
            res["rows"].sort(key=lambda r: (r["budget"], r["policy"]))
            done = sum(r["computed"] for r in res["rows"])
            res["compute_ms_per_chunk"] = 1000 * sum(
                r["apply_s_computing"] for r in res["rows"]) / max(done, 1)
            save()
        if "usage" in parts:
            res["usage"] = usage_cost(enc, files, work)
            print(f"usage: {res['usage']}", file=sys.stderr)
            save()
        if "vault5000" in parts:
            res["vault5000"] = vault5000(lm, enc, files, args.docs, work)
            save()
    render(res, args.out)
    print((args.out / "scheduler.md").read_text())


if __name__ == "__main__":
    main()
