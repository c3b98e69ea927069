"""Query expansion (#32): evidence recall@1/5/10 by LoCoMo category with one retrieval round
and with the second, expanded round, on tuning and held-out conversations, and search latency
at the conversations' size and at 10,000 memories.

Each conversation is packed with the defaults (the ``context`` MemReader included, as for any
conversation); every question of categories 1-4 is searched through the library's entry point
(``memos_cli.api.Session.search``, what ``memos search`` calls) with ``expand=False`` (one
round, the default before) and ``expand=True`` (the default now). Recall@k is the fraction of
the question's evidence turns among the top k. The expansion's parameters (3 feedback
memories, 5 terms, equal weights, idf over the memories) were chosen on conversations 26, 30
and 41; 42 and 43 were searched with it once, for this report.

Latency is ``search_s`` (query embedding, both rounds, fusion), median after a warm-up query.
At 10,000 memories the cube is ``bench/scale.py``'s synthetic one (LoCoMo turns with their
real vectors plus noise), searched with 60 LoCoMo questions.

    python bench/expansion.py [--out docs/expansion.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ["MEMOS_NO_USAGE"] = "1"  # the retrieval alone: no usage store, no access log
os.environ["MEMOS_VAULT"] = str(Path(tempfile.gettempdir()) / "memos-bench-no-vault")
sys.path.insert(0, str(ROOT))

from bench.retrieval import KS, evidence_ids, machine, recall  # noqa: E402
from bench.scale import base_vectors, cube_of, turns_and_questions  # noqa: E402
from memos_cli.api import Session  # noqa: E402
from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.lifecycle.pack import BY_SOURCE, pack  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.sources import Defaults  # noqa: E402

TUNE = ("26", "30", "41")
HELD_OUT = ("42", "43")
MODES = {"one round (before)": False, "expanded second round": True}


def measure(cubes: dict[str, Path], convs: tuple[str, ...], locomo: Path,
            enc: Embedder) -> dict[str, object]:
    rec: dict[str, dict[str, dict[int, list[float]]]] = {
        m: defaultdict(lambda: {k: [] for k in KS}) for m in MODES}
    times: dict[str, list[float]] = {m: [] for m in MODES}
    n = 0
    for conv in convs:
        sessions = {m: Session([open_cube(cubes[conv])], embedder=enc, expand=e)
                    for m, e in MODES.items()}
        for s in sessions.values():
            s.search("warm-up query", 10)
        for q in json.loads((locomo / f"{conv}.json").read_text())["qa"]:
            ev = evidence_ids(q)
            if q.get("category") not in (1, 2, 3, 4) or not ev:
                continue
            n += 1
            for m, s in sessions.items():
                got = s.search(q["question"], max(KS))
                times[m].append(got.search_s)
                for k, v in recall([h.memory.turn_id or "" for h in got.hits], ev).items():
                    rec[m]["all"][k].append(v)
                    rec[m][f"category {q['category']}"][k].append(v)
    return {"conversations": list(convs), "questions": n,
            "recall": {m: {group: {str(k): round(statistics.mean(v), 3) for k, v in r.items()}
                           for group, r in sorted(rec[m].items())} for m in MODES},
            "search_ms_p50": {m: round(statistics.median(t) * 1000, 1)
                              for m, t in times.items()}}


def at_10k(work: Path, enc: Embedder) -> dict[str, float]:
    turns, questions = turns_and_questions()
    cube = cube_of(work / "10k.memcube", 0, turns, base_vectors(enc, turns), enc.describe())
    out = {}
    for m, e in MODES.items():
        s = Session([open_cube(cube)], embedder=enc, expand=e)
        s.search("warm-up query", 10)
        out[m] = round(statistics.median(
            s.search(q, 10).search_s for q in questions[:60]) * 1000, 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--locomo", type=Path, default=ROOT.parent / "shared/datasets/locomo")
    ap.add_argument("--out", type=Path, default=ROOT / "docs/expansion.json")
    ap.add_argument("--parts", default="tuning,held_out,10k")
    a = ap.parse_args()
    parts = a.parts.split(",")
    enc = Embedder()
    report: dict[str, object] = {"machine": machine(),
                                 "date": datetime.now(timezone.utc).date().isoformat()}
    with tempfile.TemporaryDirectory() as tmp:
        cubes = {}
        for conv in (*TUNE, *(HELD_OUT if "held_out" in parts else ())):
            cubes[conv] = Path(tmp) / f"{conv}.memcube"
            pack([a.locomo / f"{conv}.json"], cubes[conv], embedder=enc, readers=BY_SOURCE,
                 defaults=Defaults(now=datetime(2026, 1, 1, tzinfo=timezone.utc)))
        for name, convs in (("tuning", TUNE), ("held_out", HELD_OUT)):
            if name in parts:
                report[name] = measure(cubes, convs, a.locomo, enc)
                print(name, json.dumps(report[name]), flush=True)
        if "10k" in parts:
            report["search_ms_p50_at_10000"] = at_10k(Path(tmp), enc)
            print("10k", json.dumps(report["search_ms_p50_at_10000"]), flush=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
