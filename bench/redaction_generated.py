"""Redaction on data nobody here wrote (#28): labelled synthetic sentences from Microsoft's
``presidio-evaluator`` (its templates, filled by Faker in several locales), redacted line by
line with ``memos dump --redact all``'s redactor.

Per entity type: recall is the share of labelled personal values gone from the output (a name
leaks if any of its words of three or more letters is still there, as in ``bench/redaction.py``);
precision is the share of what was redacted that overlaps a labelled personal value; for
organisations (not personal data), kept is the share still in the output. The sentences are
split by position: even ones may be looked at when changing the rules ("tuning"), odd ones
are reported apart and never looked at ("untouched"). The sentences are generated once
(``--regenerate``) and kept in ``bench/data/presidio_generated.jsonl``.

    pip install presidio-evaluator==0.3.2   (in `pip install -e .[bench]`)
    python bench/redaction_generated.py [--per-locale 250] [--seed 7]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.redaction import leaked  # noqa: E402
from bench.retrieval import machine  # noqa: E402
from memos_cli.governance.redact import TYPES, Redactor, _outermost  # noqa: E402

LOCALES = ("en_US", "en_GB", "en_IN", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL",
           "pt_BR")
#: presidio-evaluator's labels, grouped as the issue's targets name them
GROUPS = {"PERSON": "names", "PHONE_NUMBER": "phones", "EMAIL_ADDRESS": "emails",
          "IBAN_CODE": "ids", "CREDIT_CARD": "ids", "US_SSN": "ids",
          "US_DRIVER_LICENSE": "ids", "US_PASSPORT": "ids", "US_BANK_NUMBER": "ids",
          "IP_ADDRESS": "ip", "STREET_ADDRESS": "locations", "GPE": "locations"}
#: labelled values that are not personal data: they should stay
NOT_PERSONAL = {"ORGANIZATION": "organisations"}
#: The sentences, generated once and kept: presidio-evaluator 0.3.2 picks its templates with
#: an unseeded generator, so a new run gives other sentences, and the untouched half must stay
#: the same sentences from one measurement to the next.
DATA = ROOT / "bench" / "data" / "presidio_generated.jsonl"


def generate(per_locale: int, seed: int) -> list[dict]:  # type: ignore[type-arg]
    import random

    import numpy as np
    from presidio_evaluator.data_generator import PresidioSentenceFaker

    rows = []
    for n, loc in enumerate(LOCALES):
        random.seed(seed + n)  # its template choice uses the global generators
        np.random.seed(seed + n)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(
                io.StringIO()):
            faker = PresidioSentenceFaker(loc, lower_case_ratio=0.0, random_seed=seed + n)
            samples = faker.generate_new_fake_sentences(per_locale)
        for s in samples:
            rows.append({"locale": loc, "text": s.full_text,
                         "spans": [(sp.entity_type, sp.entity_value, sp.start_position,
                                    sp.end_position) for sp in s.spans]})
    return rows


def score(rows: list[dict], red: Redactor) -> dict[str, dict[str, float]]:  # type: ignore[type-arg]
    found = defaultdict(lambda: [0, 0])  # group -> [values, not leaked (or kept)]
    hits = [0, 0]  # redacted findings: [all, overlapping a personal value]
    misses: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        out = red(r["text"]) or ""
        personal = [(s, e) for t, _, s, e in r["spans"] if t in GROUPS]
        for t, value, _, _ in r["spans"]:
            if t in GROUPS:
                g = GROUPS[t]
                found[g][0] += 1
                if leaked(value, out):
                    misses[g].append(value)
                else:
                    found[g][1] += 1
            elif t in NOT_PERSONAL:
                g = NOT_PERSONAL[t]
                found[g][0] += 1
                found[g][1] += value in out
        for f in _outermost(red._analyze(r["text"])):
            hits[0] += 1
            hits[1] += any(f.start < e and s < f.end for s, e in personal)
    out = {g: {"n": n, ("kept" if g in NOT_PERSONAL.values() else "recall"): round(ok / n, 3)}
           for g, (n, ok) in sorted(found.items()) if n}
    out["all findings"] = {"n": hits[0], "precision": round(hits[1] / hits[0], 3)
                           if hits[0] else 0.0}
    out["misses (first 8 per group)"] = {g: v[:8] for g, v in misses.items()}  # type: ignore[dict-item]
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-locale", type=int, default=250)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "redaction-generated.json"))
    ap.add_argument("--regenerate", action="store_true",
                    help=f"write {DATA.name} anew (its sentences change: the generator's "
                         "template choice is not seeded)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.regenerate or not DATA.is_file():
        rows = generate(args.per_locale, args.seed)
        DATA.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    rows = [json.loads(x) for x in DATA.read_text().splitlines() if x.strip()]
    gen_s = time.perf_counter() - t0
    red = Redactor(tuple(TYPES))
    t1 = time.perf_counter()
    result = {"machine": machine(), "sentences": len(rows), "locales": list(LOCALES),
              "seed": args.seed, "generate_s": round(gen_s, 1),
              "tuning (even sentences)": score(rows[0::2], red),
              "untouched (odd sentences)": score(rows[1::2], red)}
    result["redact_s_per_sentence"] = round((time.perf_counter() - t1) / len(rows), 4)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
