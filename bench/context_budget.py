"""What reaches the prompt (#32): gold evidence in the prompt at token budgets, and what the
default model makes of a longer prompt.

Part 1, evidence in the prompt. Each LoCoMo conversation is packed with the defaults; for every
question of categories 1-4 the top 100 memories are retrieved (``memos_cli.api.Session.search``,
what ``memos run`` retrieves with ``--context-tokens`` and no ``-k``), then fitted to a budget
with the default model's tokenizer (``memos_cli.tiers.budget.fit``, what ``run`` puts in the
prompt). The share of the question's evidence turns that reach the prompt is averaged over
questions, at ``-k 5`` (the default) and at each budget. Tuning conversations (26, 30, 41) and
held-out ones (42, 43) are reported apart; nothing here was tuned on the held-out pair.

Part 2, answers. On the first N questions of a tuning conversation the default model
(SmolLM2-135M-Instruct) answers greedily (the default generation controls, 32 new tokens) with
the memories of each setting in the prompt; token F1 against the gold answer (SQuAD
normalisation) and time to first token are reported. Settings: ``-k 5``; budgets of 512 and
1024 tokens in rank order (what ``--context-tokens`` does) and in valid-time order (tried, not
adopted). ``--eval`` repeats the adopted setting and the default on a held-out conversation.

    python bench/context_budget.py [--answers 60] [--eval 42] [--out docs/context_budget.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ["MEMOS_NO_USAGE"] = "1"  # the retrieval and prompt alone: no usage store, no log
os.environ["MEMOS_VAULT"] = str(Path(tempfile.gettempdir()) / "memos-bench-no-vault")
sys.path.insert(0, str(ROOT))

from bench.kv_chunks import f1  # noqa: E402
from bench.retrieval import evidence_ids, machine  # noqa: E402
from memos_cli.api import Session  # noqa: E402
from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.lifecycle.pack import BY_SOURCE, pack  # noqa: E402
from memos_cli.models import chat  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.sources import Defaults  # noqa: E402
from memos_cli.tiers import budget, generation  # noqa: E402
from memos_cli.tiers.plaintext import answer_memories  # noqa: E402

TUNE = ("26", "30", "41")
HELD_OUT = ("42", "43")
BUDGETS = (256, 512, 1024, 2048)
#: (label, budget or None, k or None, order)
ANSWER_SETTINGS = (("-k 5 (default)", None, 5, "rank"),
                   ("512 tokens, rank order", 512, None, "rank"),
                   ("512 tokens, time order", 512, None, "time"),
                   ("1024 tokens, rank order", 1024, None, "rank"),
                   ("1024 tokens, time order", 1024, None, "time"))


def questions(conv: Path) -> list[dict]:  # type: ignore[type-arg]
    return [q for q in json.loads(conv.read_text())["qa"]
            if q.get("category") in (1, 2, 3, 4) and evidence_ids(q)]


def shares(session: Session, tok: object, qs: list[dict]) -> dict[str, list[float]]:  # type: ignore[type-arg]
    out: dict[str, list[float]] = {"-k 5": [], **{str(b): [] for b in BUDGETS}}
    kept: dict[str, list[int]] = {str(b): [] for b in BUDGETS}
    for q in qs:
        ev = evidence_ids(q)
        hits = session.search(q["question"], budget.POOL).hits
        out["-k 5"].append(len(ev & {h.memory.turn_id for h in hits[:5]}) / len(ev))
        for b in BUDGETS:
            got = budget.fit(tok, hits, b).kept
            out[str(b)].append(len(ev & {h.memory.turn_id for h in got}) / len(ev))
            kept[str(b)].append(len(got))
    return {**out, **{f"memories at {b}": [float(x) for x in v] for b, v in kept.items()}}


def answers(session: Session, lm: chat.ChatModel, qs: list[dict],  # type: ignore[type-arg]
            settings: tuple[tuple[str, int | None, int | None, str], ...]) -> dict:  # type: ignore[type-arg]
    f1s: dict[str, list[float]] = {s[0]: [] for s in settings}
    ttft: dict[str, list[float]] = {s[0]: [] for s in settings}
    with generation.using(generation.DEFAULT):
        for q in qs:
            hits = session.search(q["question"], budget.POOL).hits
            for label, b, k, order in settings:
                got = budget.fit(lm.tokenizer, hits, b, k).kept
                if order == "time":
                    got = sorted(got, key=lambda h: h.memory.valid_from)
                g = answer_memories(lm, [h.memory for h in got], q["question"],
                                    max_new_tokens=32)
                f1s[label].append(f1(g.text, str(q.get("answer", ""))))
                ttft[label].append(g.ttft_s)
    return {label: {"token_f1": round(statistics.mean(f1s[label]), 3),
                    "ttft_s_p50": round(statistics.median(ttft[label]), 3)}
            for label in f1s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--locomo", type=Path, default=ROOT.parent / "shared/datasets/locomo")
    ap.add_argument("--answers", type=int, default=60, help="questions answered per setting")
    ap.add_argument("--tune-answers", default="26")
    ap.add_argument("--eval", default="42", help="held-out conversation for the answers")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/context_budget.json")
    a = ap.parse_args()
    enc, lm = Embedder(), chat.load(None)
    report: dict[str, object] = {"machine": machine(), "model": lm.name,
                                 "date": datetime.now(timezone.utc).date().isoformat()}
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        sessions = {}
        for conv in (*TUNE, *HELD_OUT):
            out = Path(tmp) / f"{conv}.memcube"
            pack([a.locomo / f"{conv}.json"], out, embedder=enc, defaults=Defaults(now=now),
                 readers=BY_SOURCE)  # what `memos pack` runs: context, for conversations
            sessions[conv] = Session([open_cube(out)], embedder=enc)
        for name, convs in (("tuning", TUNE), ("held_out", HELD_OUT)):
            pooled: dict[str, list[float]] = {}
            n = 0
            for conv in convs:
                qs = questions(a.locomo / f"{conv}.json")
                n += len(qs)
                for key, vals in shares(sessions[conv], lm.tokenizer, qs).items():
                    pooled.setdefault(key, []).extend(vals)
            report[f"evidence_in_prompt_{name}"] = {
                "conversations": list(convs), "questions": n,
                **{k: round(statistics.mean(v), 3) if not k.startswith("memories")
                   else statistics.median(v) for k, v in pooled.items()}}
            print(name, json.dumps(report[f"evidence_in_prompt_{name}"]), flush=True)
        tune_qs = questions(a.locomo / f"{a.tune_answers}.json")[:a.answers]
        report["answers_tuning"] = {"conversation": a.tune_answers, "questions": len(tune_qs),
                                    "results": answers(sessions[a.tune_answers], lm, tune_qs,
                                                       ANSWER_SETTINGS)}
        print("answers tuning", json.dumps(report["answers_tuning"]), flush=True)
        if a.eval:
            eval_qs = questions(a.locomo / f"{a.eval}.json")[:a.answers]
            chosen = tuple(s for s in ANSWER_SETTINGS if s[0] in (
                "-k 5 (default)", "512 tokens, rank order"))
            report["answers_held_out"] = {"conversation": a.eval, "questions": len(eval_qs),
                                          "results": answers(sessions[a.eval], lm, eval_qs,
                                                             chosen)}
            print("answers held out", json.dumps(report["answers_held_out"]), flush=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
