"""Redaction recall and over-redaction on a hand-written PII set (#12).

``bench/data/pii_set.jsonl``: 64 lines, each with the personal values it holds (names from
many languages, attendee lists, phone numbers of 11 countries, IBANs, card numbers, IPv4 and
IPv6 addresses, crypto addresses, e-mail addresses) and the product or project names it holds,
which are not personal. Recall: the share of personal values absent from the output; kept: the
share of product and project names still in it. Modes: each line alone; the whole set as one
dump (every value learned first, then redacted wherever it occurs); and the dump with the
product names as a ``--keep-terms`` list. The first 32 lines and the last 32 are reported
apart (nothing was tuned on either; the modes were designed with the issue's examples).

    python bench/redaction.py
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.retrieval import machine  # noqa: E402
from memos_cli.redact import TYPES, Redactor  # noqa: E402


def leaked(value: str, out: str) -> bool:
    """A value leaks if it is still there, or, for a name or an address, any of its words
    of three or more letters is (``<PERSON> García`` leaks García)."""
    parts = [w for w in re.findall(r"[^\W\d_]{3,}", value)] if not re.search(r"\d", value) \
        else []
    return value in out or any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", out) for w in parts)


def score(rows: list[dict], outs: list[str]) -> dict[str, object]:  # type: ignore[type-arg]
    pii = [(v, o) for r, o in zip(rows, outs, strict=True) for v in r["pii"]]
    keep = [(v, o) for r, o in zip(rows, outs, strict=True) for v in r["keep"]]
    return {"personal_values": len(pii),
            "recall": sum(not leaked(v, o) for v, o in pii) / len(pii),
            "product_names": len(keep), "kept": sum(v in o for v, o in keep) / len(keep),
            "missed": [v for v, o in pii if leaked(v, o)],
            "over_redacted": [v for v, o in keep if v not in o]}


def main() -> int:
    rows = [json.loads(line) for line in (ROOT / "bench" / "data" / "pii_set.jsonl")
            .read_text().splitlines() if line.strip()]
    names = tuple(sorted({v for r in rows for v in r["keep"]}))
    report: dict[str, object] = {"machine": machine(), "lines": len(rows)}
    for mode in ("line by line", "one dump (propagation)", "one dump + --keep-terms"):
        red = Redactor(tuple(TYPES), keep=names if "keep" in mode else ())
        t0 = time.perf_counter()
        if mode != "line by line":
            for r in rows:
                red.learn(r["text"])
        outs = [red(r["text"]) or "" for r in rows]
        took = time.perf_counter() - t0
        half = len(rows) // 2
        report[mode] = {"all": score(rows, outs), "first half": score(rows[:half], outs[:half]),
                        "second half": score(rows[half:], outs[half:]),
                        "seconds": round(took, 2)}
        a = report[mode]["all"]  # type: ignore[index]
        print(f"{mode}: recall {a['recall']:.3f} kept {a['kept']:.3f} "
              f"(halves {report[mode]['first half']['recall']:.3f}/"  # type: ignore[index]
              f"{report[mode]['second half']['recall']:.3f} recall) "  # type: ignore[index]
              f"missed {a['missed']} over {a['over_redacted']}", flush=True)
    (ROOT / "docs" / "redaction.json").write_text(json.dumps(report, indent=2,
                                                             ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
