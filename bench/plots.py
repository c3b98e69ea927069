"""Plots of the activation-tier and scale benchmarks (#34), drawn from the results the docs
keep (``docs/*.json``), so that a page's plot and its table come from the same run.

* ``scheduler-hit-rate.png``: chunk hit rate against the chunk store's budget, per policy,
  with the oracle that knows the next questions (``docs/scheduler.json``, bench/scheduler.py);
* ``auto-breakeven.png``: composed / plain-prefill time to first token against the share of
  slots with a chunk (``docs/auto_breakeven.json``, bench/auto_breakeven.py);
* ``scale.png``: loading 10,000 memories and search p50 in a vault of 10,000 and of 1,000,000
  memories, against #34's targets (``docs/scale.json``, bench/scale.py);
* ``compose-variants.png``: next-token and answer agreement with a full prefill per
  composition variant, tuning and held-out conversations (``docs/compose_variants.json``,
  bench/compose_variants.py).

Usage:  python bench/plots.py [--docs docs]   (needs the ``bench`` extra: matplotlib)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parents[1]


def _read(docs: Path, name: str) -> dict[str, Any] | None:
    path = docs / name
    return json.loads(path.read_text("utf-8")) if path.is_file() else None


def scheduler(res: dict[str, Any], out: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4))
    rows = res["rows"]
    for policy in sorted({r["policy"] for r in rows} - {"-"}):
        pts = sorted((r["budget"], r["hit_rate"]) for r in rows if r["policy"] == policy)
        ax.plot([0.0] + [b for b, _ in pts], [0.0] + [h for _, h in pts], marker="o",
                label=policy)
    oracle = sorted((float(b), h) for b, h in res["oracle"].items())
    ax.plot([0.0] + [b for b, _ in oracle], [0.0] + [h for _, h in oracle], "k--",
            label="oracle (next 20 questions)")
    ax.axhline(0.6, color="grey", lw=0.8, ls=":")
    ax.annotate("target 0.6 at 25%", (0.26, 0.61), fontsize=8, color="grey")
    ax.set_xlabel("chunk store budget (share of all chunks' bytes)")
    ax.set_ylabel("retrieved memories served from chunks")
    ax.set_title(f"Scheduler replay, {res['questions']} LoCoMo questions in order", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "scheduler-hit-rate.png", dpi=110)
    plt.close(fig)


def breakeven(res: dict[str, Any], out: Path) -> None:
    pts = sorted((float(s), r) for s, r in res["composed_over_prefill_ttft"].items())
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot([s for s, _ in pts], [r for _, r in pts], marker="o", label="composed / prefill")
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.axhline(0.35, color="tab:red", lw=0.8, ls="--", label="#34 target 0.35")
    ax.set_ylim(0, 1.1)
    ax.set_xlabel(f"share of the {res['k']} slots with a cached chunk")
    ax.set_ylabel("TTFT ratio (median)")
    ax.set_title(f"--tier auto break-even, LoCoMo {res['conversation']}, "
                 f"{res['questions']} questions", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "auto-breakeven.png", dpi=110)
    plt.close(fig)


def scale(res: dict[str, Any], out: Path) -> None:
    rows = sorted(res["rows"], key=lambda r: r["size"])
    labels = [f"{r['size']:,}" for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.6))
    load = [r["load_10k_median_s"] for r in rows]
    a.bar(labels, load, color="tab:blue")
    a.axhline(1.5 * load[0], color="tab:red", ls="--", lw=0.8, label="target 1.5x the 10k vault")
    a.set_ylabel("loading 10,000 memories (s, median)")
    a.set_xlabel("memories already in the vault")
    a.legend(fontsize=8, loc="upper left")
    search = [r["search_p50_ms"] for r in rows]
    b.bar(labels, search, color="tab:green")
    b.axhline(30, color="tab:red", ls="--", lw=0.8, label="target 30 ms")
    b.set_ylabel("search p50 (ms)")
    b.set_xlabel("memories in the vault")
    b.legend(fontsize=8, loc="upper right")
    fig.suptitle("Vault at scale (bench/scale.py)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "scale.png", dpi=110)
    plt.close(fig)


def compose_variants(res: dict[str, Any], out: Path) -> None:
    splits = [s for s in ("tune", "held_out") if s in res]
    fig, axes = plt.subplots(1, len(splits), figsize=(5.5 * len(splits), 4.6), squeeze=False)
    for ax, split in zip(axes[0], splits, strict=True):
        part = {v: r for v, r in res[split].items() if v != "questions"}
        names = list(part)
        y = range(len(names))
        ax.barh([i + 0.2 for i in y], [part[n]["top1"] for n in names], 0.4,
                label="next token = full prefill")
        ax.barh([i - 0.2 for i in y], [part[n]["exact"] for n in names], 0.4,
                label="whole answer = full prefill")
        ax.axvline(0.9, color="tab:red", ls="--", lw=0.8)
        ax.set_yticks(list(y), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(f"{split.replace('_', '-')}: {res[split]['questions']} questions",
                     fontsize=10)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=2)
    fig.tight_layout()
    fig.savefig(out / "compose-variants.png", dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = ap.parse_args()
    out = args.docs / "images"
    out.mkdir(parents=True, exist_ok=True)
    for name, draw in (("scheduler.json", scheduler), ("auto_breakeven.json", breakeven),
                       ("scale.json", scale), ("compose_variants.json", compose_variants)):
        res = _read(args.docs, name)
        if res is not None:
            draw(res, out)
            print(f"drew {name}")


if __name__ == "__main__":
    main()
