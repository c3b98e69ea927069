"""Five retrieval ideas of #32, probed on the tuning conversations (LoCoMo 26, 30, 41) before
any was built into memos: each re-ranks or adds to what the defaults return, and none was
adopted, so conversations 42 and 43 were not searched with any of them.

Each conversation is packed with the defaults (``readers=BY_SOURCE``: the ``context`` reader),
and every category 1-4 question with evidence is searched through ``Session.search`` (the
defaults, k = 50 for the probes that re-rank). Recall@10 of the evidence turns, overall and by
category:

- ``time``: the 37 questions that name a period (``named_period``), searched with the default
  view (relative dates from today), with dates off, and from the conversation's last session;
- ``entities``: how many questions name an entity (spaCy ``en_core_web_sm``, the model
  Presidio uses) other than the two speakers;
- ``diversity``: at most N hits a session in the first ten (the rest fill in);
- ``speaker``: hits said by the one speaker a question names move up B places;
- ``sessions``: a row per session (its turns' text; the normalised mean of their vectors),
  searched hybrid; the best turns of its top sessions are fused with the turn ranking by RRF
  (k = 10) at weight W.

Usage: python bench/retrieval_probes.py [--locomo ../shared/datasets/locomo]
Writes docs/retrieval-probes.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.retrieval import evidence_ids, machine, recall, search  # noqa: E402
from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.cube.index import Index, build_index  # noqa: E402
from memos_cli.governance.redact import SPACY_MODEL  # noqa: E402
from memos_cli.lifecycle.pack import BY_SOURCE, pack  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.sources import Defaults  # noqa: E402
from memos_cli.validity import CURRENT, View, named_period  # noqa: E402

TUNING = ("26", "30", "41")
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
Scores = dict[str, dict[str, list[float]]]


def add(scores: Scores, name: str, cat: int, ids: list[str], ev: set[str]) -> None:
    r = recall(ids, ev)[10]
    scores[name]["all"].append(r)
    scores[name][str(cat)].append(r)


def diverse(turns: list[str], cap: int) -> list[str]:
    kept: list[str] = []
    rest: list[str] = []
    per: dict[str, int] = defaultdict(int)
    for t in turns:
        s = t.split(":")[0]
        (kept if per[s] < cap else rest).append(t)
        per[s] += 1
    return (kept + rest)[:10]


def fuse(base: list[str], extra: list[str], weight: float) -> list[str]:
    score: dict[str, float] = defaultdict(float)
    for ranked, w in ((base, 1.0), (extra, weight)):
        for r, t in enumerate(ranked):
            score[t] += w / (10 + r + 1)
    return sorted(score, key=lambda t: -score[t])[:10]


def sessions(cube: Any, enc: Embedder, tmp: Path) -> Callable[[str, np.ndarray, int, int],
                                                                list[str]]:
    mems = [m for m in cube.memories if m.turn_id]
    vectors = enc.encode([m.content for m in mems])
    by_session: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(mems):
        by_session[m.turn_id.split(":")[0]].append(i)
    names = sorted(by_session)
    mean = np.stack([vectors[by_session[s]].mean(0) for s in names])
    mean /= np.linalg.norm(mean, axis=1, keepdims=True)
    build_index(tmp, names, [" ".join(mems[i].content for i in by_session[s]) for s in names],
                mean.astype(np.float32))
    index = Index(tmp)

    def turns(question: str, qv: np.ndarray, top: int, per: int) -> list[str]:
        out: list[str] = []
        for h in index.search(question, qv, top):
            best = sorted(by_session[h.id], key=lambda i: -float(vectors[i] @ qv))[:per]
            out += [mems[i].turn_id for i in best]
        return out
    return turns


def main() -> None:
    import spacy

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--locomo", type=Path, default=ROOT.parent / "shared/datasets/locomo")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "retrieval-probes.json")
    a = ap.parse_args()
    enc = Embedder()
    nlp = spacy.load(SPACY_MODEL)
    scores: Scores = defaultdict(lambda: defaultdict(list))
    entity_questions: dict[str, int] = defaultdict(int)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        for conv in TUNING:
            f = a.locomo / f"{conv}.json"
            data = json.loads(f.read_text())
            pack([f], tmp / f"{conv}.memcube", embedder=enc, defaults=Defaults(now=NOW),
                 readers=BY_SOURCE)
            cube = open_cube(tmp / f"{conv}.memcube")
            last = max(m.event_time for m in cube.memories if m.event_time)
            speakers = {data["speaker_a"], data["speaker_b"]}
            session_turns = sessions(cube, enc, tmp / f"{conv}-sessions")
            for q in data["qa"]:
                cat, question, ev = q.get("category"), q["question"], evidence_ids(q)
                if cat not in (1, 2, 3, 4) or not ev:
                    continue
                hits = search(cube, enc, question, 50).hits
                base = [h.memory.turn_id or "" for h in hits]
                add(scores, "defaults", cat, base[:10], ev)
                if named_period(question, last):
                    for name, view in (("time: default view", CURRENT),
                                       ("time: dates off", View(dates=False)),
                                       ("time: from the last session", View(now=last))):
                        add(scores, name, cat, [h.memory.turn_id or "" for h in search(
                            cube, enc, question, 10, view).hits], ev)
                if any(e.text.split("'")[0] not in speakers and e.label_ not in (
                        "DATE", "TIME", "CARDINAL", "ORDINAL") for e in nlp(question).ents):
                    entity_questions[str(cat)] += 1
                for cap in (2, 4):
                    add(scores, f"diversity: {cap} a session", cat, diverse(base, cap), ev)
                named = {s for s in speakers if re.search(rf"\b{re.escape(s)}\b", question)}
                for bonus in (5, 20):
                    ranked = sorted(range(len(hits)), key=lambda i, b=bonus: i - (
                        b if len(named) == 1 and hits[i].memory.speaker in named else 0))
                    add(scores, f"speaker: up {bonus}", cat, [base[i] for i in ranked][:10], ev)
                qv = enc.encode([question])[0]
                for top, per in ((3, 2), (5, 3)):
                    extra = session_turns(question, qv, top, per)
                    for w in (0.3, 1.0):
                        add(scores, f"sessions: top {top}, {per} turns each, weight {w}", cat,
                            fuse(base, extra, w), ev)
    out = {"machine": machine(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
           "conversations": list(TUNING),
           "entity_questions_by_category": dict(entity_questions),
           "recall_at_10": {name: {k: {"recall": round(float(np.mean(v)), 3),
                                       "questions": len(v)} for k, v in sorted(s.items())}
                            for name, s in scores.items()}}
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    for name, s in out["recall_at_10"].items():
        print(name, {k: v["recall"] for k, v in s.items()})
    print("questions naming another entity, by category:", dict(entity_questions))


if __name__ == "__main__":
    main()
