"""Retrieval benchmark on LoCoMo: evidence recall@k, pack throughput, search latency.

For each LoCoMo conversation, ``memos pack`` builds a cube (one memory per dialog turn); every
question of categories 1-4 is searched, and recall@k is the fraction of its evidence turns
(``D1:3`` ids) found among the top k memories, averaged over questions. In the same run, three
references are measured on the same turns: vector search alone (MiniLM), BM25 alone, and the
plain BM25 + MiniLM fusion over the raw turn text (no speaker, date or photo caption), and
memos' own rendered text with the standard RRF parameters (k = 60, equal weights).

Usage:  python bench/retrieval.py [--locomo ../shared/datasets/locomo] [--out bench/out]
Searches go through the library's entry point (``memos_cli.api.Session.search``, what ``memos
search`` calls); latency is its ``search_s``, the wall time of the retrieval in-process (query
embedding, vector search, full-text search, fusion), after one warm-up query, on this
machine's CPU. Usage recording is off (``MEMOS_NO_USAGE=1``) and the default vault points at
nothing, so no access-log write is timed or made.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ["MEMOS_NO_USAGE"] = "1"  # no usage store, no access log: the retrieval alone
os.environ["MEMOS_VAULT"] = str(Path(tempfile.gettempdir()) / "memos-bench-no-vault")
sys.path.insert(0, str(ROOT))

from memos_cli.api import SearchResult, Session  # noqa: E402
from memos_cli.cube import open_cube  # noqa: E402
from memos_cli.cube.index import Index, build_index  # noqa: E402
from memos_cli.lifecycle.pack import pack  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.sources import Defaults  # noqa: E402
from memos_cli.validity import CURRENT, View  # noqa: E402

KS = (1, 5, 10)


def evidence_ids(q: dict) -> set[str]:
    out = set()
    for e in q.get("evidence") or []:
        for part in str(e).replace(",", ";").split(";"):
            if part.strip():
                out.add(part.strip())
    return out


def recall(found: list[str], ev: set[str]) -> dict[int, float]:
    return {k: len(ev & set(found[:k])) / len(ev) for k in KS}


def search(cube: Any, embedder: Any, query: str, k: int, view: View = CURRENT) -> SearchResult:
    """The top ``k`` memories of an opened ``cube`` for ``query`` through the library's entry
    point (``Session.search``, what ``memos search`` runs), best first; ``view.now`` is what
    relative dates count from. The benches search through this, so that they measure what a
    user gets."""
    return Session([cube], embedder=embedder).search(query, k, view=view)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {torch.get_num_threads()} threads, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--locomo", type=Path, default=ROOT.parent / "shared/datasets/locomo")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/out")
    args = ap.parse_args()
    files = sorted(args.locomo.glob("*.json"))
    if not files:
        sys.exit(f"{args.locomo}: no LoCoMo .json files")
    args.out.mkdir(parents=True, exist_ok=True)
    embedder = Embedder()
    modes = ("memos", "memos text, standard RRF (k=60, equal weights)", "vector only (raw text)",
             "BM25 only (raw text)", "plain fusion (raw text, standard RRF)")
    scores: dict[str, dict[int, list[float]]] = {m: {k: [] for k in KS} for m in modes}
    latencies: list[float] = []
    pack_rates: list[float] = []
    turns = questions = no_evidence = missing_ids = 0
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            cube_path = Path(tmp) / f"{f.stem}.memcube"
            report = pack([f], cube_path, embedder=embedder, defaults=Defaults(now=now))
            pack_rates.append(report.memories / report.seconds)
            cube = open_cube(cube_path)
            turn_of = {m.id: m.turn_id for m in cube.memories}
            turns += len(cube.memories)
            # references: raw turn text, no speaker/date/caption
            # (the LoCoMo reader appends the photo caption to the turn text; cut it off)
            raw = [m.content.split(" [shares a photo:")[0] for m in cube.memories]
            raw_dir = Path(tmp) / f"{f.stem}-raw"
            build_index(raw_dir, [m.id for m in cube.memories], raw, embedder.encode(raw))
            raw_index = Index(raw_dir)
            data = json.loads(f.read_text())
            known = set(turn_of.values())
            session = Session([cube], embedder=embedder)
            session.search("warm-up query", 10)
            for q in data["qa"]:
                if q.get("category") not in (1, 2, 3, 4):
                    continue
                ev = evidence_ids(q)
                if not ev:
                    no_evidence += 1
                    continue
                questions += 1
                missing_ids += len(ev - known)
                result = session.search(q["question"], max(KS))
                hits = result.hits
                latencies.append(result.search_s)  # the retrieval itself, as before
                found = [h.memory.turn_id or "" for h in hits]
                for k, v in recall(found, ev).items():
                    scores["memos"][k].append(v)
                vec = embedder.encode([q["question"]])[0]
                std = dict(rrf_k=60, vector_weight=1.0, text_weight=1.0)
                fused = raw_index.search(q["question"], vec, max(KS), **std)
                rendered = cube.index().search(q["question"], vec, max(KS), **std)
                lists = {
                    "memos text, standard RRF (k=60, equal weights)":
                        [turn_of[h.id] or "" for h in rendered],
                    "plain fusion (raw text, standard RRF)": [turn_of[h.id] or "" for h in fused],
                    "vector only (raw text)": _single(raw_index, q["question"], vec, turn_of,
                                                      "vector"),
                    "BM25 only (raw text)": _single(raw_index, q["question"], vec, turn_of,
                                                    "text"),
                }
                for mode, ids in lists.items():
                    for k, v in recall(ids, ev).items():
                        scores[mode][k].append(v)
    result = {
        "machine": machine(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "conversations": len(files), "turns": turns, "questions": questions,
        "questions_without_evidence": no_evidence, "evidence_ids_not_in_conversation":
            missing_ids,
        "recall": {m: {str(k): round(float(np.mean(v)), 3) for k, v in s.items()}
                   for m, s in scores.items()},
        "pack_memories_per_s_median": round(statistics.median(pack_rates), 1),
        "search_ms_p50": round(float(np.percentile(latencies, 50)) * 1000, 1),
        "search_ms_p95": round(float(np.percentile(latencies, 95)) * 1000, 1),
    }
    (args.out / "retrieval.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"Machine: {result['machine']}; {result['date']}. {len(files)} conversations, "
             f"{turns} turns, {questions} questions (categories 1-4).", "",
             "| retrieval | recall@1 | recall@5 | recall@10 |", "|---|---|---|---|"]
    for m in modes:
        r = result["recall"][m]
        lines.append(f"| {m} | {r['1']:.3f} | {r['5']:.3f} | {r['10']:.3f} |")
    lines += ["", f"Pack throughput (median over conversations, embedding included): "
              f"{result['pack_memories_per_s_median']} memories/s. Search latency "
              f"(query embedding included): p50 {result['search_ms_p50']} ms, "
              f"p95 {result['search_ms_p95']} ms."]
    (args.out / "retrieval.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _single(index: Index, query: str, vec: np.ndarray, turn_of: dict[str, str | None],
            which: str) -> list[str]:
    hits = index.search(query, vec, 50)
    key = "vector_rank" if which == "vector" else "text_rank"
    ranked = sorted((getattr(h, key), h.id) for h in hits if getattr(h, key) is not None)
    return [turn_of[i] or "" for _, i in ranked]


if __name__ == "__main__":
    main()
