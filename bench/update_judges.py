"""Could a model decide supersession where the rules stop? Three deciders on the same pairs.

Supersession (``memos_cli.lifecycle.supersede``) decides from the pattern of two statements.
The issue (#30) allows a local model to confirm doubtful cases behind an option. Before
building one, this measures whether the models that ship here can tell a revision from a
near miss at all, on the pairs of statements the update scenarios hold:

* pairs: within each scenario of the opened sets (``tune``/``held_out`` of
  ``updates.jsonl``, ``fresh``, ``third``, ``fifth``, ``sixth``; never ``fourth`` or
  ``seventh``, which stay held out), every two events that are not unrelated neighbours,
  the earlier first; a pair is a revision when the scenario expects the later one to
  supersede the earlier one. The near misses make these pairs hard on purpose: the same
  attribute of another subject, a hypothetical, a question, a quoted figure. The two ends
  of a chain revised twice, linked only through the value between them, are left out;
* ``rules``: ``supersede.compare`` on the two statements and their cosine: the reference;
* ``cosine``: the embedder's cosine alone (all-MiniLM-L6-v2), which measures aboutness;
* ``embedding classifier``: an L2-regularised logistic regression on ``[a*b, |a-b|, cos]``
  of the two embeddings, fitted with L-BFGS on all sets but one and scored on that one
  (leave one set out), for three strengths;
* ``chat`` (``--chat``): the default chat model (SmolLM2-135M-Instruct) asked, with six
  worked examples, whether the later note replaces what the earlier one says about the same
  thing; the score is the next-token logit of "yes" minus that of "no", the decision being a
  choice between the two words (constrained decoding of one token).

Reported per set: AUC (the chance that a revision scores above a non-revision; 0.5 is
chance) and accuracy at the natural threshold (0 for the log-odds, the rules' decision).

Usage: python bench/update_judges.py [--chat] [--out docs/update_judges.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ["MEMOS_NO_USAGE"] = "1"
sys.path.insert(0, str(ROOT))

from bench.retrieval import machine  # noqa: E402
from bench.updates import load  # noqa: E402
from memos_cli.lifecycle.statement import analyse  # noqa: E402
from memos_cli.lifecycle.supersede import compare  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402

#: The opened sets (file, split name); the held-out ``fourth`` and ``seventh`` are not read.
OPENED = (("updates.jsonl", "tune+held_out"), ("updates_fresh.jsonl", "fresh"),
          ("updates_third.jsonl", "third"), ("updates_fifth.jsonl", "fifth"),
          ("updates_sixth.jsonl", "sixth"))
SHOTS = (("The team lunch is on Thursday.", "Team lunch moved to Friday.", "yes"),
         ("The Paris office budget is 2M.", "The Berlin office budget is 1.5M.", "no"),
         ("Dan drives a blue Golf.", "If Dan sold the Golf he would buy a bike.", "no"),
         ("I take the 8:10 train.", "These days I catch the 7:40 train instead.", "yes"),
         ("Our rent is 900.", "The neighbours pay 1,100 in rent.", "no"),
         ("Lena manages the shop.", "Omar runs the shop now that Lena left.", "yes"))
ASK = ("Earlier: {a}\nLater: {b}\nDoes the later note replace what the earlier note says "
       "about the same thing? Answer yes or no.")


def pairs() -> list[tuple[str, str, str, bool]]:
    """(set, earlier text, later text, is a revision) for every two non-neighbour events.
    Two ends of a chain that are not linked directly (the first and third value of a fact
    revised twice) are left out: the later one does replace the earlier, but supersession
    links it to the value between them."""
    out = []
    for name, split in OPENED:
        for s in load(ROOT / "bench" / "data" / name):
            links = {tuple(x) for x in s.get("links", [])}
            chained = _closure(links) - links
            for i, j in itertools.combinations(range(len(s["events"])), 2):
                a, b = s["events"][i], s["events"][j]
                if "other" in (a["role"], b["role"]):
                    continue
                if a["time"] > b["time"]:
                    a, b, i, j = b, a, j, i
                if (j, i) in chained:
                    continue
                out.append((split, a["text"], b["text"], (j, i) in links))
    return out


def _closure(links: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """Every (newer, older) pair that a chain of links joins."""
    out = set(links)
    while True:
        more = {(a, d) for a, b in out for c, d in out if b == c} - out
        if not more:
            return out
        out |= more


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """The chance that a positive scores above a negative (ties count half)."""
    pos, neg = score[label], score[~label]
    return float(((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean())


def logistic(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    """Weights (bias last) of an L2-regularised logistic regression, fitted with L-BFGS."""
    xt = torch.tensor(np.hstack([x, np.ones((len(x), 1))]), dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)
    w = torch.zeros(xt.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=500, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        opt.zero_grad()
        value = torch.nn.functional.binary_cross_entropy_with_logits(xt @ w, yt) \
            + l2 * (w[:-1] ** 2).sum()
        value.backward()
        return value

    opt.step(loss)
    return w.detach().numpy()


def chat_scores(rows: list[tuple[str, str, str, bool]]) -> tuple[np.ndarray, float]:
    """The chat model's yes-minus-no logit for each pair, and seconds per pair."""
    from memos_cli.models import chat

    m = chat.load(None)
    tok = m.tokenizer
    yes, no = (tok.encode(w, add_special_tokens=False)[0] for w in ("yes", "no"))
    shots: list[dict[str, str]] = []
    for a, b, said in SHOTS:
        shots += [{"role": "user", "content": ASK.format(a=a, b=b)},
                  {"role": "assistant", "content": said}]
    out = []
    t0 = time.perf_counter()
    with torch.no_grad():
        for _, a, b, _ in rows:
            text = tok.apply_chat_template(
                [*shots, {"role": "user", "content": ASK.format(a=a, b=b)}],
                tokenize=False, add_generation_prompt=True)
            logits = m.model(tok(text, return_tensors="pt").input_ids).logits[0, -1]
            out.append(float(logits[yes] - logits[no]))
    return np.array(out), (time.perf_counter() - t0) / len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chat", action="store_true", help="also ask the default chat model")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "update_judges.json")
    args = ap.parse_args()
    rows = pairs()
    split = np.array([r[0] for r in rows])
    label = np.array([r[3] for r in rows])
    emb = Embedder()
    texts = sorted({t for r in rows for t in r[1:3]})
    vec = dict(zip(texts, emb.encode(texts), strict=True))
    cos = np.array([float(vec[a] @ vec[b]) for _, a, b, _ in rows])
    rules = np.array([(d := compare(analyse(b), analyse(a), c)) is not None
                      and d.kind == "update" for (_, a, b, _), c in zip(rows, cos, strict=True)])
    feats = np.array([np.concatenate([vec[a] * vec[b], np.abs(vec[a] - vec[b]), [c]])
                      for (_, a, b, _), c in zip(rows, cos, strict=True)])
    chat, per_pair = chat_scores(rows) if args.chat else (None, None)
    report: dict[str, Any] = {
        "machine": machine(), "date": datetime.now(timezone.utc).date().isoformat(),
        "pairs": len(rows), "revisions": int(label.sum()), "sets": {}}
    for name in dict.fromkeys(split):
        test, train = split == name, split != name
        y = label[test]
        got: dict[str, Any] = {"pairs": int(test.sum()), "revisions": int(y.sum()),
                               "rules": {"accuracy": round(float((rules[test] == y).mean()), 3)},
                               "cosine": {"auc": round(auc(cos[test], y), 3)}}
        for l2 in (0.001, 0.01, 0.1):
            w = logistic(feats[train], label[train], l2)
            s = feats[test] @ w[:-1] + w[-1]
            got[f"embedding classifier, l2={l2}"] = {
                "auc": round(auc(s, y), 3), "accuracy": round(float(((s > 0) == y).mean()), 3)}
        if chat is not None:
            got["chat"] = {"auc": round(auc(chat[test], y), 3),
                           "accuracy": round(float(((chat[test] > 0) == y).mean()), 3)}
        report["sets"][name] = got
        print(name, json.dumps(got))
    if per_pair is not None:
        report["chat_seconds_per_pair"] = round(per_pair, 3)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
