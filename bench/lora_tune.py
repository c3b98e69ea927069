"""Tune a LoRA recipe on half of what measures it, so the other half stays untouched.

Trains one adapter per variant on ``fixtures/quillfeather`` (44 facts) and scores it on the
tuning split only: the 44 paraphrased questions, the general questions on even lines of
``memos_cli/data/general/questions.jsonl`` (105 of 210) and the KL over the prompts on even
lines of ``prompts.jsonl`` (158 of 315). The odd lines, and ``fixtures/brackenfold`` as a
whole, are left for ``bench/lora.py`` to report after the choice. The sampled questions and the
base model's answers are made once and reused by every variant (they depend on the seed only).

Usage: python bench/lora_tune.py guarded guarded:general_per_batch=3 guarded:lr=2e-3 ...
(a variant is a recipe name, then ``:field=value`` pairs of ``lora.Recipe``; fields not given
keep the dataclass defaults, not ``lora.RECIPE_DEFAULTS``).
Appends one JSON line per variant to bench/out/lora-tune.jsonl.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.evaluation import forgetting  # noqa: E402
from memos_cli.evaluation.evaluate import evaluate, load_questions  # noqa: E402
from memos_cli.lifecycle.pack import pack  # noqa: E402
from memos_cli.models import chat  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.sources import Defaults  # noqa: E402
from memos_cli.tiers import lora  # noqa: E402
from memos_cli.tiers.convert import convert_to_lora, select_memories  # noqa: E402
from memos_cli.tiers.lora import data as lora_data  # noqa: E402


def variant(spec: str) -> lora.Recipe:
    name, *pairs = spec.split(":")
    fields = {f.name: f.type for f in dataclasses.fields(lora.Recipe)}
    opts: dict = {}
    for pair in pairs:
        key, value = pair.split("=", 1)
        kind = fields[key]
        opts[key] = (int(value) if kind == "int" else float(value) if kind == "float"
                     else value)
    if "rank" in opts and "alpha" not in opts:
        opts["alpha"] = 2 * opts["rank"]
    return lora.Recipe(name=name, **opts)


def main() -> None:
    specs = sys.argv[1:] or ["guarded"]
    fixture = ROOT / "fixtures" / "quillfeather"
    questions = [q for q in load_questions(fixture / "questions.jsonl")
                 if q.kind == "paraphrased"]
    general = load_questions(forgetting.packaged("questions.jsonl"))[0::2]
    kl_prompts = forgetting.load_prompts(forgetting.packaged("prompts.jsonl"))[0::2]
    # made once for every variant: both are seeded and depend on the base model only
    real_sample, real_answers = lora_data.sample_questions, lora_data.base_answers
    memo: dict = {}

    def sample_questions(c, mems, n, temperature, seed):  # type: ignore[no-untyped-def]
        key = ("q", tuple(m.id for m in mems), n, temperature, seed)
        if key not in memo:
            memo[key] = real_sample(c, mems, n, temperature, seed)
        return memo[key]

    def base_answers(c, prompts, *a, **kw):  # type: ignore[no-untyped-def]
        key = ("a", tuple(prompts))
        if key not in memo:
            memo[key] = real_answers(c, prompts, *a, **kw)
        return memo[key]

    lora_data.sample_questions = sample_questions  # type: ignore[assignment]
    lora_data.base_answers = base_answers  # type: ignore[assignment]
    embedder = Embedder(None)
    lm = chat.load(None)
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    cache: dict = {}
    out = ROOT / "bench" / "out" / "lora-tune.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        base_cube = Path(tmp) / "quillfeather.memcube"
        pack([fixture / "facts.jsonl"], base_cube, embedder=embedder,
             defaults=Defaults(now=now, owner="bench"), created_at=now)
        mems = select_memories(open_cube(base_cube))
        for spec in specs:
            recipe = variant(spec)
            cube = Path(tmp) / "tune.memcube"
            shutil.rmtree(cube, ignore_errors=True)
            shutil.copytree(base_cube, cube)
            t0 = time.perf_counter()
            report = convert_to_lora(cube, lm, mems, recipe)
            wall = time.perf_counter() - t0
            (row,) = evaluate(open_cube(cube), lm, questions, ["lora"], general=general,
                              kl_prompts=kl_prompts, cache=cache)
            g = row.general or {}
            entry = {"variant": spec, "recipe": recipe.to_dict(),
                     "paraphrased": round(row.accuracy, 4),
                     "paraphrased_correct": row.correct, "general": g.get("accuracy"),
                     "general_correct": g.get("correct"), "base_correct": g.get("base_correct"),
                     "kept": g.get("kept"), "kl": g.get("kl"), "convert_wall_s": round(wall, 1),
                     "train_s": report["train_s"], "steps": report["steps"],
                     "examples": report["examples"]}
            print(json.dumps(entry), flush=True)
            with out.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")


if __name__ == "__main__":
    main()
