"""Interference of two parameter-tier adapters attached at once (``memos run a b --tier lora
--combine cat|linear``): each cube's questions answered with its own adapter alone and with
both combined, and the general questions with both, on the default model.

The cubes are those ``bench/lora.py --keep DIR`` leaves (one adapter per fixture, trained
independently on the same base model), by default ``bench/out/cubes/quillfeather-guarded``
and ``brackenfold-guarded``; each is answered with the questions of its fixture.

Usage: python bench/lora_combine.py [--cubes DIR] [--recipe guarded] [--combine cat,linear,route]
[--tag T]. Writes bench/out/lora-combine[-T].json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.retrieval import machine  # noqa: E402
from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.evaluation import forgetting  # noqa: E402
from memos_cli.evaluation.evaluate import bare_ask, load_questions, run_tier  # noqa: E402
from memos_cli.models import chat  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.tiers import lora  # noqa: E402
from memos_cli.tiers.lora.combine import attach_many, route  # noqa: E402

FIXTURES = ("quillfeather", "brackenfold")


def score(lm: chat.ChatModel, cubes: list, combine: str | None, questions: list,
          max_new_tokens: int = 48, embedder: Embedder | None = None) -> dict:
    """Accuracy on ``questions`` with the adapters of ``cubes`` attached (combined by
    ``combine`` when several; ``route``: each question answered by the adapter
    ``combine.route`` picks, the questions of one adapter in one go)."""
    if combine == "route":
        picks = [route(cubes, embedder, q.question)[0] for q in questions]
        rows = [dict(score(lm, [c], None, [q for q, p in zip(questions, picks, strict=True)
                                           if p == i], max_new_tokens), routed=picks.count(i))
                for i, c in enumerate(cubes) if i in picks]
        correct = sum(r["correct"] for r in rows)
        return {"accuracy": round(correct / len(questions), 4), "correct": correct,
                "questions": len(questions), "routed": [picks.count(i)
                                                        for i in range(len(cubes))]}
    tuned = attach_many(lm, cubes, combine=combine or "cat")
    try:
        row = run_tier("lora", bare_ask(tuned, "lora", max_new_tokens), questions, 0)
    finally:
        lm.model = lora.detach(tuned.model)
    kinds = {k: v["accuracy"] for k, v in row.by_kind.items()}
    return {"accuracy": round(row.accuracy, 4), "correct": row.correct,
            "questions": row.questions, "by_kind": kinds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cubes", type=Path, default=ROOT / "bench" / "out" / "cubes")
    ap.add_argument("--recipe", default="guarded")
    ap.add_argument("--combine", default="cat,linear,route")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--tag", default=None, help="suffix of the output file names")
    args = ap.parse_args()
    lm = chat.load(None)
    embedder = Embedder(None) if "route" in args.combine.split(",") else None
    cubes = [open_cube(args.cubes / f"{f}-{args.recipe}.memcube") for f in FIXTURES]
    sets = {f: load_questions(ROOT / "fixtures" / f / "questions.jsonl") for f in FIXTURES}
    general = load_questions(forgetting.packaged("questions.jsonl"))
    result: dict = {"machine": machine(), "model": lm.name, "recipe": args.recipe, "rows": []}
    for f, cube in zip(FIXTURES, cubes, strict=True):
        alone = score(lm, [cube], None, sets[f])
        entry = {"fixture": f, "alone": alone}
        for how in args.combine.split(","):
            both = score(lm, cubes, how, sets[f], embedder=embedder)
            entry[how] = both | {"of_alone": round(both["accuracy"] / alone["accuracy"], 4)
                                 if alone["accuracy"] else None}
        result["rows"].append(entry)
        print(json.dumps(entry), flush=True)
    base = run_tier("none", bare_ask(lm, "none", 24), general, 0)
    result["general"] = {"base": base.correct, "questions": base.questions}
    for how in args.combine.split(","):
        result["general"][how] = score(lm, cubes, how, general, 24, embedder)["correct"]
    print(json.dumps(result["general"]), flush=True)
    name = "lora-combine" + (f"-{args.tag}" if args.tag else "")
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / f"{name}.md").write_text(report_md(result))
    print(report_md(result))


def report_md(r: dict) -> str:
    hows = [k for k in r["rows"][0] if k not in ("fixture", "alone")]
    lines = [f"Machine: {r['machine']}. Model: {r['model']}. Recipe: {r['recipe']}.", "",
             "| questions of | alone | " + " | ".join(f"both, {h} (of alone)" for h in hows)
             + " |", "|---|---|" + "---|" * len(hows)]
    for e in r["rows"]:
        a = e["alone"]
        cells = [f"{e[h]['accuracy']:.1%} ({e[h]['correct']}/{e[h]['questions']}; "
                 f"{e[h]['of_alone']:.0%})" for h in hows]
        lines.append(f"| {e['fixture']} | {a['accuracy']:.1%} ({a['correct']}/{a['questions']})"
                     f" | " + " | ".join(cells) + " |")
    g = r["general"]
    lines += ["", f"General questions answered right: base {g['base']} of {g['questions']}; "
              + "; ".join(f"both adapters, {h}: {g[h]}" for h in hows) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
