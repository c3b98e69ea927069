"""General accuracy of kept parameter-tier cubes on the two halves of the general set: the
tuning half (even lines of ``memos_cli/data/general/questions.jsonl``, which
``bench/lora_tune.py`` looked at while choosing the recipe) and the untouched half (odd lines).

Usage: python bench/lora_split.py [CUBE...]  (default: the cubes ``bench/lora.py --keep
bench/out/cubes`` left). Writes bench/out/lora-split.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.evaluation import forgetting  # noqa: E402
from memos_cli.evaluation.evaluate import GENERAL_TOKENS, bare_ask, load_questions, run_tier  # noqa: E402
from memos_cli.models import chat  # noqa: E402
from memos_cli.tiers import lora  # noqa: E402


def main() -> None:
    cubes = [Path(p) for p in sys.argv[1:]] or sorted(
        (ROOT / "bench" / "out" / "cubes").glob("*.memcube"))
    general = load_questions(forgetting.packaged("questions.jsonl"))
    halves = {"tuning (even lines)": general[0::2], "untouched (odd lines)": general[1::2]}
    lm = chat.load(None)
    base = {h: run_tier("none", bare_ask(lm, "none", GENERAL_TOKENS), qs, 0).correct
            for h, qs in halves.items()}
    result: dict = {"base": base, "cubes": {}}
    for path in cubes:
        tuned = lora.attach(lm, open_cube(path))
        try:
            got = {h: run_tier("lora", bare_ask(tuned, "lora", GENERAL_TOKENS), qs, 0).correct
                   for h, qs in halves.items()}
        finally:
            lm.model = lora.detach(tuned.model)
        result["cubes"][path.name] = got
        print(path.name, {h: f"{got[h]} / {base[h]} = {got[h] / base[h]:.1%}" for h in got},
              flush=True)
    (ROOT / "bench" / "out" / "lora-split.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
