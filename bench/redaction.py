"""Redaction recall and over-redaction on a hand-written PII set (#12).

``bench/data/pii_set.jsonl``: 64 lines, each with the personal values it holds (names from
many languages, attendee lists, phone numbers of 11 countries, IBANs, card numbers, IPv4 and
IPv6 addresses, crypto addresses, e-mail addresses) and the product or project names it holds,
which are not personal. Recall: the share of personal values absent from the output; kept: the
share of product and project names still in it. Modes: each line alone; the whole set as one
dump (every value learned first, then redacted wherever it occurs); and the dump with the
product names as a ``--keep-terms`` list. The first 32 lines and the last 32 are reported
apart; the rules were written while looking at this set, so every mode is also scored on
``bench/data/pii_holdout.jsonl`` (20 lines, 26 personal values, 24 product names), written
before the last rule change and never used to change the rules.

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
from memos_cli.governance.redact import TYPES, Redactor  # noqa: E402


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


def read_set(name: str) -> list[dict]:
    return [json.loads(line) for line in (ROOT / "bench" / "data" / name)
            .read_text().splitlines() if line.strip()]


def redact_all(rows: list[dict], mode: str) -> list[str]:
    names = tuple(sorted({v for r in rows for v in r["keep"]}))
    red = Redactor(tuple(TYPES), keep=names if "keep" in mode else ())
    if mode != "line by line":
        for r in rows:
            red.learn(r["text"])
    return [red(r["text"]) or "" for r in rows]


def main() -> int:
    rows = read_set("pii_set.jsonl")
    # written after the rules were last changed and never used to change them
    holdout = read_set("pii_holdout.jsonl")
    report: dict[str, object] = {"machine": machine(), "lines": len(rows),
                                 "holdout_lines": len(holdout)}
    for mode in ("line by line", "one dump (propagation)", "one dump + --keep-terms"):
        t0 = time.perf_counter()
        outs = redact_all(rows, mode)
        took = time.perf_counter() - t0
        half = len(rows) // 2
        report[mode] = {"all": score(rows, outs), "first half": score(rows[:half], outs[:half]),
                        "second half": score(rows[half:], outs[half:]),
                        "seconds": round(took, 2),
                        "holdout": score(holdout, redact_all(holdout, mode))}
        a = report[mode]["all"]  # type: ignore[index]
        print(f"{mode}: recall {a['recall']:.3f} kept {a['kept']:.3f} "
              f"(halves {report[mode]['first half']['recall']:.3f}/"  # type: ignore[index]
              f"{report[mode]['second half']['recall']:.3f} recall) "  # type: ignore[index]
              f"missed {a['missed']} over {a['over_redacted']}", flush=True)
        h = report[mode]["holdout"]  # type: ignore[index]
        print(f"  holdout: recall {h['recall']:.3f} kept {h['kept']:.3f} missed {h['missed']} "
              f"over {h['over_redacted']}", flush=True)
    (ROOT / "docs" / "redaction.json").write_text(json.dumps(report, indent=2,
                                                             ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
