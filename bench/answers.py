"""Answers of the default model with and without the generation controls (#12).

For LoCoMo questions (categories 1-4), the text tier retrieves k memories from a cube of the
conversation and the default model answers greedily, through the library's entry point
(``memos_cli.api.Session.answer``, what ``memos run --tier text`` calls; seconds per answer
are its ``generate_s``). Per generation setting: the share of
answers that loop (a word bigram, digits and punctuation dropped, occurring 3 or more times),
the share that echo the question, token F1 against the gold answer (SQuAD normalisation), mean
answer tokens and seconds per answer. Settings are chosen on one conversation (--tune) and
reported on another (--eval), untouched while choosing.

    python bench/answers.py --tune 26 --tune-n 30 --eval 41 --eval-n 100
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ["MEMOS_NO_USAGE"] = "1"  # the answers alone: no usage store, no access log
os.environ["MEMOS_VAULT"] = str(Path(tempfile.gettempdir()) / "memos-bench-no-vault")
sys.path.insert(0, str(ROOT))

from bench.kv_chunks import f1  # noqa: E402
from bench.retrieval import machine  # noqa: E402
from memos_cli.api import AnswerOptions, Session  # noqa: E402
from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.lifecycle.pack import pack  # noqa: E402
from memos_cli.models import chat  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.sources import Defaults  # noqa: E402
from memos_cli.tiers import generation  # noqa: E402
from memos_cli.tiers.generation import GenerationOptions  # noqa: E402

SETTINGS = {
    "plain (before)": generation.PLAIN,
    "stop + penalty 1.15": GenerationOptions(repetition_penalty=1.15, stop_at_blank_line=True),
    "stop + penalty 1.3": GenerationOptions(repetition_penalty=1.3, stop_at_blank_line=True),
    "stop + no-repeat 3-gram": GenerationOptions(no_repeat_ngram_size=3,
                                                 stop_at_blank_line=True),
}


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z\s]", " ", text.lower()).split()


def loops(answer: str) -> bool:
    w = words(answer)
    counts = collections.Counter(itertools.pairwise(w))
    return any(n >= 3 for n in counts.values())


def echoes(answer: str, question: str) -> bool:
    a, q = " ".join(words(answer)), " ".join(words(question))
    return bool(q) and q in a


def questions(conv: Path, n: int) -> list[tuple[str, str]]:
    data = json.loads(conv.read_text())
    out = [(q["question"], str(q["answer"])) for q in data["qa"]
           if q.get("category") in (1, 2, 3, 4) and "answer" in q]
    return out[:n]


def run(cube: Path, lm: chat.ChatModel, enc: Embedder, qs: list[tuple[str, str]],
        opts: GenerationOptions, k: int, tokens: int) -> dict[str, float]:
    rows = []
    answer = AnswerOptions(tier="text", k=k, max_new_tokens=tokens, generation=opts)
    with Session([open_cube(cube)], embedder=enc, model=lm) as s:  # what `memos run` does
        for q, gold in qs:
            a = s.answer(q, answer)
            rows.append((a.answer, gold, q, a.timings["generate_s"], a.new_tokens))
    return {"questions": len(rows),
            "loop_share": sum(loops(a) for a, *_ in rows) / len(rows),
            "echo_share": sum(echoes(a, q) for a, _, q, *_ in rows) / len(rows),
            "token_f1": statistics.mean(f1(a, g) for a, g, *_ in rows),
            "mean_answer_tokens": statistics.mean(r[4] for r in rows),
            "median_s_per_answer": statistics.median(r[3] for r in rows),
            "examples": [{"q": q, "gold": g, "answer": a} for a, g, q, *_ in rows[:5]]}


def show(label: str, row: dict[str, object]) -> None:
    print(label, json.dumps({k: v for k, v in row.items() if k != "examples"}), flush=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--locomo", default=str(ROOT.parent / "shared" / "datasets" / "locomo"))
    ap.add_argument("--tune", default="26")
    ap.add_argument("--tune-n", type=int, default=30)
    ap.add_argument("--eval", default="41")
    ap.add_argument("--eval-n", type=int, default=100)
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--out", default=str(ROOT / "docs" / "answers.json"))
    a = ap.parse_args()
    enc, lm = Embedder(), chat.load(None)
    report: dict[str, object] = {"machine": machine(), "k": a.k, "max_new_tokens": a.tokens,
                                 "date": datetime.now(timezone.utc).date().isoformat()}
    with tempfile.TemporaryDirectory() as t:
        cubes = {}
        for conv in (a.tune, a.eval):
            cubes[conv] = Path(t) / f"{conv}.memcube"
            pack([Path(a.locomo) / f"{conv}.json"], cubes[conv], embedder=enc,
                 defaults=Defaults(now=datetime(2025, 1, 1, tzinfo=timezone.utc)))
        tune = {}
        for name, opts in SETTINGS.items():
            tune[name] = run(cubes[a.tune], lm, enc, questions(Path(a.locomo) / f"{a.tune}.json",
                                                               a.tune_n), opts, a.k, a.tokens)
            show(f"tune {name}", tune[name])
        report["tune"] = {"conversation": a.tune, "results": tune}
        # the chosen setting: fewest loops, then the best token F1, on the tuning conversation
        best = min((n for n in SETTINGS if n != "plain (before)"),
                   key=lambda n: (tune[n]["loop_share"], -tune[n]["token_f1"]))
        report["chosen"] = best
        print("chosen:", best, "| memos's DEFAULT:", repr(generation.DEFAULT), flush=True)
        final = {}
        for name, opts in (("plain (before)", generation.PLAIN), (best, SETTINGS[best])):
            final[name] = run(cubes[a.eval], lm, enc, questions(Path(a.locomo) / f"{a.eval}.json",
                                                                a.eval_n), opts, a.k, a.tokens)
            show(f"eval {name}", final[name])
        report["eval"] = {"conversation": a.eval, "results": final}
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
