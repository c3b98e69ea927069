"""The Memory API (#31): what ``memos chat`` remembers, and what a call costs through MCP.

Extraction. Each turn of a conversation is given to the salient-statement reader
(``memos_cli.readers.salient``): with rules only (``--extract rules``, the default) and with
the local model judging each sentence (``--extract model``, SmolLM2-135M-Instruct, yes/no
constrained). A turn "became a memory" when at least one of its sentences was kept. On
LoCoMo the turns that some question cites as evidence stand for what was worth keeping:
reported are the share of evidence turns that became memories (recall), the share of turns
that became memories that are evidence (precision), and the share of all turns written. The
model is run on the first conversation only (its cost: one forward pass per sentence). On the
procurement scenario (``bench/data/procurement.jsonl``, 15 rounds written for the chat test,
each marked salient or not) the same shares are against those marks.

Cost. A vault of 10,000 synthetic memories (``bench/scale.py``'s); 20 ``search`` and 20
``remember`` calls each: through MCP (the SDK's stdio client against ``memos mcp``, the
server started once), as one-shot CLI commands (``memos search``, ``memos remember``: a
process each, wall time), and in process (``Session.search``, ``Session.remember``).
Medians, milliseconds.

Usage: python bench/memory_api.py [--locomo ../shared/datasets/locomo] [--skip-cost]
Writes bench/out/memory_api.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MEMOS_NO_USAGE", "1")

from bench.retrieval import evidence_ids, machine  # noqa: E402
from memos_cli.readers.salient import salient, salient_with_model  # noqa: E402

OUT = ROOT / "bench" / "out"


def locomo_turns(path: Path) -> tuple[list[tuple[str, str]], set[str]]:
    data = json.loads(path.read_text())
    conv = data.get("conversation", data)
    turns = [(t["dia_id"], t.get("text", "")) for k, v in sorted(conv.items())
             if k.startswith("session_") and isinstance(v, list) for t in v
             if isinstance(t, dict) and "dia_id" in t]
    evidence = set()
    for q in data["qa"]:
        if q.get("category") in (1, 2, 3, 4):
            evidence |= evidence_ids(q)
    return turns, evidence


def shares(kept: set[str], wanted: set[str], total: int) -> dict[str, Any]:
    hit = len(kept & wanted)
    return {"recall": round(hit / len(wanted), 3) if wanted else None,
            "precision": round(hit / len(kept), 3) if kept else None,
            "written_share": round(len(kept) / total, 3) if total else None,
            "written": len(kept), "wanted": len(wanted), "turns": total}


def extraction(files: list[Path], chat: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kept: set[str] = set()
    wanted: set[str] = set()
    total = 0
    for f in files:
        turns, ev = locomo_turns(f)
        total += len(turns)
        wanted |= {f"{f.stem}:{i}" for i in ev}
        kept |= {f"{f.stem}:{i}" for i, text in turns if salient(text)}
    out["locomo, rules"] = shares(kept, wanted, total)
    turns, ev = locomo_turns(files[0])
    t0 = time.perf_counter()
    kept_m = {i for i, text in turns if salient_with_model(text, chat)}
    took = time.perf_counter() - t0
    kept_r = {i for i, text in turns if salient(text)}
    out[f"locomo {files[0].stem}, rules"] = shares(kept_r, ev, len(turns))
    out[f"locomo {files[0].stem}, model"] = shares(kept_m, ev, len(turns)) | {
        "ms_per_turn": round(1000 * took / len(turns), 1)}
    rounds = [json.loads(x) for x in (ROOT / "bench/data/procurement.jsonl").read_text()
              .splitlines()]
    want = {r["round"] for r in rounds if r["salient"]}
    for name, fn in (("rules", salient), ("model", lambda t: salient_with_model(t, chat))):
        got = {r["round"] for r in rounds if fn(r["text"])}
        out[f"procurement, {name}"] = shares(got, want, len(rounds))
    return out


def cost(work: Path) -> dict[str, Any]:
    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    from bench.scale import base_vectors, build, turns_and_questions
    from memos_cli.api import Session
    from memos_cli.models.embedder import Embedder

    enc = Embedder()
    turns, questions = turns_and_questions()
    base = base_vectors(enc, turns)
    vault = work / "vault"
    shutil.rmtree(vault, ignore_errors=True)
    build(vault, 10_000, turns, base, enc.describe())
    qs = questions[:20]
    texts = [f"Fact number {i}: the {w} archive lives on shelf {i}." for i, w in
             enumerate(("blue", "green", "red", "grey", "white", "black", "pink", "gold",
                        "teal", "rust", "navy", "lime", "plum", "sand", "jade", "ruby",
                        "onyx", "mint", "coal", "snow"))]
    env = {**os.environ, "MEMOS_VAULT": str(vault), "MEMOS_USER": "bench"}
    res: dict[str, dict[str, float]] = {}

    def cli(args: list[str]) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "memos_cli", *args], env=env, check=True,
                       capture_output=True)
        return time.perf_counter() - t0

    res["cli one-shot"] = {
        "search": statistics.median(cli(["search", q, "-k", "5"]) for q in qs[:8]),
        "remember": statistics.median(cli(["remember", f"CLI {t}"]) for t in texts[:8])}
    with Session(vault=vault, user="bench", embedder=enc) as s:
        s.search(qs[0], 5)

        def timed(fn: Any) -> float:
            t0 = time.perf_counter()
            fn()
            return time.perf_counter() - t0

        res["in process"] = {
            "search": statistics.median(timed(lambda q=q: s.search(q, 5)) for q in qs),
            "remember": statistics.median(timed(lambda t=t: s.remember(f"API {t}"))
                                          for t in texts)}

    async def mcp() -> dict[str, float]:
        params = StdioServerParameters(command=sys.executable,
                                       args=["-m", "memos_cli", "mcp", "--as", "bench"],
                                       env=env, cwd=str(ROOT))
        async with Client(params) as c:
            await c.call_tool("search", {"query": qs[0]})
            ts, tr = [], []
            for q in qs:
                t0 = time.perf_counter()
                await c.call_tool("search", {"query": q, "k": 5})
                ts.append(time.perf_counter() - t0)
            for t in texts:
                t0 = time.perf_counter()
                await c.call_tool("remember", {"text": f"MCP {t}"})
                tr.append(time.perf_counter() - t0)
            return {"search": statistics.median(ts), "remember": statistics.median(tr)}

    res["MCP (stdio)"] = anyio.run(mcp)
    return {k: {op: round(v * 1000, 1) for op, v in d.items()} for k, d in res.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--locomo", type=Path, default=ROOT.parent / "shared/datasets/locomo")
    ap.add_argument("--skip-cost", action="store_true")
    ap.add_argument("--skip-extraction", action="store_true")
    args = ap.parse_args()
    from memos_cli.models import chat as chat_model

    result: dict[str, Any] = {"machine": machine()}
    if not args.skip_extraction:
        result["extraction"] = extraction(sorted(args.locomo.glob("*.json")),
                                          chat_model.load(None))
        print(json.dumps(result, indent=2), flush=True)
    if not args.skip_cost:
        with tempfile.TemporaryDirectory() as tmp:
            result["cost_ms_median"] = cost(Path(tmp))
    OUT.mkdir(exist_ok=True)
    (OUT / "memory_api.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
