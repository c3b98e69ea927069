"""Parameter-tier benchmark: what each tier retains of the Quillfeather fixture, on the default
model (SmolLM2-135M-Instruct) and this machine's CPU.

Packs fixtures/quillfeather/facts.jsonl (44 invented facts), builds a float32 KV segment, and
for every recipe in --recipes trains a LoRA adapter (wall time measured, question sampling
included) and answers fixtures/quillfeather/questions.jsonl (88 questions: 44 in the facts' own
words, 44 paraphrased) with it. Tiers none, text and kv answer the same questions once. What
every adapter makes the model forget is measured as `memos eval` measures it
(memos_cli/forgetting.py): the 210 packaged general questions answered with and without the
adapter, and the mean KL from the base model over its continuations of 315 general prompts.
Greedy decoding throughout.

Usage: python bench/lora.py [--recipes guarded,mixed] [--fixture brackenfold] [--epochs N]
[--keep DIR] [--out bench/out]
Writes bench/out/lora.json and bench/out/lora.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.retrieval import machine  # noqa: E402
from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.evaluation import forgetting  # noqa: E402
from memos_cli.evaluation.evaluate import evaluate, load_questions  # noqa: E402
from memos_cli.lifecycle.pack import pack  # noqa: E402
from memos_cli.models import chat  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.sources import Defaults  # noqa: E402
from memos_cli.tiers import lora  # noqa: E402
from memos_cli.tiers.convert import convert_to_kv, convert_to_lora, select_memories  # noqa: E402


def row(r) -> dict:  # type: ignore[no-untyped-def]
    return r.to_dict(answers=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default="guarded,mixed")
    ap.add_argument("--fixture", default="quillfeather",
                    help="quillfeather (44 facts) or brackenfold (30 facts, held apart from "
                         "any tuning): a directory of fixtures/ with facts.jsonl and "
                         "questions.jsonl")
    ap.add_argument("--epochs", type=int, default=None, help="default: the recipe default")
    ap.add_argument("--rank", type=int, default=None, help="default: the recipe default")
    ap.add_argument("--targets", default=None, help="comma-separated modules [default: all "
                                                    "seven projections]")
    ap.add_argument("--lr", type=float, default=None, help="default: the recipe default")
    ap.add_argument("--alpha", type=int, default=None, help="default: 2 x rank (Biderman "
                                                            "et al. 2024) or the recipe's")
    ap.add_argument("--general-weight", type=float, default=None)
    ap.add_argument("--replay", type=int, default=None)
    ap.add_argument("--tag", default=None, help="suffix of the output file names")
    ap.add_argument("--tiers", default="none,text,kv", help="the reference tiers to run")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--keep", type=Path, default=None,
                    help="copy each recipe's cube here as FIXTURE-RECIPE.memcube (for "
                         "bench/lora_combine.py)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    fixture = ROOT / "fixtures" / args.fixture
    questions = load_questions(fixture / "questions.jsonl")
    general = load_questions(forgetting.packaged("questions.jsonl"))
    kl_prompts = forgetting.load_prompts(forgetting.packaged("prompts.jsonl"))
    cache: dict = {}
    embedder = Embedder(None)
    lm = chat.load(None)
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    result: dict = {"machine": machine(), "model": lm.name, "questions": len(questions),
                    "tiers": [], "recipes": []}
    with tempfile.TemporaryDirectory() as tmp:
        base_cube = Path(tmp) / f"{args.fixture}.memcube"
        pack([fixture / "facts.jsonl"], base_cube, embedder=embedder,
             defaults=Defaults(now=now, owner="bench"), created_at=now)
        mems = select_memories(open_cube(base_cube))
        convert_to_kv(base_cube, lm, mems)
        rows = evaluate(open_cube(base_cube), lm, questions, args.tiers.split(","),
                        embedder=embedder)
        result["tiers"] = [row(r) for r in rows]
        print(json.dumps([r.to_dict() for r in rows]), flush=True)
        for name in args.recipes.split(","):
            opts: dict = {"epochs": args.epochs, "rank": args.rank, "lr": args.lr,
                          "general_weight": args.general_weight, "replay": args.replay,
                          "alpha": args.alpha or (2 * args.rank if args.rank else None),
                          "target_modules": tuple(args.targets.split(",")) if args.targets
                          else None}
            recipe = lora.Recipe.named(name, **opts)
            cube = Path(tmp) / f"{name}.memcube"
            shutil.copytree(base_cube, cube)  # a fresh copy per recipe
            t0 = time.perf_counter()
            report = convert_to_lora(cube, lm, mems, recipe)
            wall = time.perf_counter() - t0
            t0 = time.perf_counter()
            (lora_row,) = evaluate(open_cube(cube), lm, questions, ["lora"], general=general,
                                   kl_prompts=kl_prompts, cache=cache)
            if args.keep:
                kept = args.keep / f"{args.fixture}-{name}.memcube"
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(cube, kept)
            entry = {"recipe": recipe.to_dict(), "convert_wall_s": round(wall, 1),
                     "train_s": report["train_s"], "examples": report["examples"],
                     "steps": report["steps"], "eval_s": round(time.perf_counter() - t0, 1),
                     "lora": row(lora_row), "general": lora_row.general}
            result["recipes"].append(entry)
            print(json.dumps({k: v for k, v in entry.items() if k != "lora"} |
                             {"lora": lora_row.to_dict()}), flush=True)
    name = "lora" if args.fixture == "quillfeather" else f"lora-{args.fixture}"
    name += f"-{args.tag}" if args.tag else ""
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(report_md(result))
    print(report_md(result))


def report_md(r: dict) -> str:
    def kind(d: dict, k: str) -> str:
        v = d["by_kind"].get(k)
        return f"{v['accuracy']:.1%} ({v['correct']}/{v['questions']})" if v else "-"

    lines = [f"Machine: {r['machine']}. Model: {r['model']}. {r['questions']} questions.", "",
             "| tier | accuracy | direct | paraphrased | TTFT (s) | tokens/s | prompt tokens "
             "| bytes |", "|---|---|---|---|---|---|---|---|"]
    rows = list(r["tiers"]) + [dict(e["lora"], tier=f"lora ({e['recipe']['name']})")
                               for e in r["recipes"]]
    for d in rows:
        lines.append(f"| {d['tier']} | {d['accuracy']:.1%} | {kind(d, 'direct')} | "
                     f"{kind(d, 'paraphrased')} | {d['ttft_s']:.3f} | {d['tokens_per_s']:.1f} "
                     f"| {d['prompt_tokens']:.0f} | {d['bytes']:,} |")
    lines += ["", "| recipe | rank / alpha | lr | examples | steps | epochs | convert wall (s) "
              "| train (s) |", "|---|---|---|---|---|---|---|---|"]
    for e in r["recipes"]:
        rc = e["recipe"]
        lines.append(f"| {rc['name']} | {rc['rank']} / {rc['alpha']} | {rc['lr']} | "
                     f"{e['examples']} | {e['steps']} | {rc['epochs']} | {e['convert_wall_s']} "
                     f"| {e['train_s']} |")
    lines += ["", "| recipe | general accuracy (adapter / base) | kept | base answers lost "
                  "| mean KL from base (nats/token) | adapter bytes |", "|---|---|---|---|---|---|"]
    for e in r["recipes"]:
        g = e["general"]
        lines.append(f"| {e['recipe']['name']} | {g['accuracy']:.1%} / {g['base_accuracy']:.1%} "
                     f"({g['correct']} / {g['base_correct']} of {g['questions']}) | "
                     f"{g['kept']:.1%} | {len(g['lost'])} | {g['kl']} | {e['lora']['bytes']:,} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
