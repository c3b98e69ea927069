"""Cost of seals on vault rows (#36, spec §16.5): the same vaults written and read without a
signing key (what memos did before) and with one, on this machine.

The vaults are ``bench/scale.py``'s synthetic ones (LoCoMo turns embedded once with the real
embedder, each memory a numbered turn with its vector plus noise), built by the code a load
commits with. For each size and mode, in one run:

- build: writing the vault (one ``Vault.apply`` per 50,000 memories; with a key every row is
  sealed as it is written);
- load: ``memos_cli.vault.load`` of a 10,000-memory cube into it, three cubes, median;
- state: ``Vault.state(vectors=False)`` (what ``vault ls``, ``dump`` and every whole-vault
  change read), five reads: the first, and the median of the other four; with the key the
  first read verifies every seal and remembers it (``MEMOS_HOME/seals.bin``), the others
  find them there;
- search: ``memos_cli.vault.search`` (k = 10) of 60 LoCoMo questions, p50 after a warm-up;
  with the key every hit's seal is checked.

"unsealed" runs with no key and an empty trust store (no seal is made or checked); "sealed"
runs with ``MEMOS_KEY`` set (rows sealed on write, checked on read: the reader knows its own
key).

Usage: python bench/vault_seals.py [--sizes 10000,100000] [--dir /tmp/memos-seals]
Writes docs/vault_seals.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.retrieval import machine  # noqa: E402
from bench.scale import NOW, base_vectors, build, cube_of, turns_and_questions  # noqa: E402
from bench.vault_ann import whole_path  # noqa: E402
from memos_cli.cube import generate_keypair  # noqa: E402
from memos_cli.models.embedder import Embedder  # noqa: E402
from memos_cli.vault import Vault, load  # noqa: E402


def median_s(times: list[float]) -> float:
    return round(statistics.median(times), 3)


def measure(size: int, mode: str, work: Path, enc: Embedder, turns: list[str], base,
            questions: list[str], cubes: list[Path]) -> dict:
    vdir = work / f"vault-{size}-{mode}"
    built = build(vdir, size, turns, base, enc.describe())
    reads = []
    for _ in range(5):
        t0 = time.perf_counter()
        state = Vault(vdir).state(vectors=False)
        reads.append(time.perf_counter() - t0)
    assert len(state.memories) == size
    search_p50_ms = whole_path(Vault(vdir), enc, questions)
    loads = []
    for c in cubes:
        t0 = time.perf_counter()
        load(Vault(vdir), c, user="bench", allow_unsigned=True, now=NOW)
        loads.append(time.perf_counter() - t0)
    tbl = Vault(vdir).table().to_arrow()
    sealed = sum(1 for s in tbl.column("seal").to_pylist() if s) \
        if "seal" in tbl.column_names else 0
    shutil.rmtree(vdir, ignore_errors=True)
    return {"size": size, "mode": mode, "build_s": round(built, 2),
            "state_first_s": round(reads[0], 3), "state_repeat_median_s": median_s(reads[1:]),
            "search_p50_ms": search_p50_ms,
            "load_10k_median_s": median_s(loads), "rows_sealed": sealed,
            "rows": tbl.num_rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--dir", default="/tmp/memos-seals")
    ap.add_argument("--out", default=str(ROOT / "docs" / "vault_seals.json"))
    a = ap.parse_args()
    work = Path(a.dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ["MEMOS_HOME"] = str(work / "home")  # an empty trust store
    os.environ["MEMOS_NO_USAGE"] = "1"
    os.environ.pop("MEMOS_VAULT_SEALS", None)
    key, _ = generate_keypair(work / "bench")
    enc = Embedder()
    turns, questions = turns_and_questions()
    questions = questions[:60]
    base = base_vectors(enc, turns)
    cubes = [cube_of(work / f"load{i}.memcube", i, turns, base, enc.describe())
             for i in range(3)]
    rows = []
    for size in (int(s) for s in a.sizes.split(",")):
        for mode in ("unsealed", "sealed"):
            if mode == "sealed":
                os.environ["MEMOS_KEY"] = str(key)
            else:
                os.environ.pop("MEMOS_KEY", None)
            rows.append(measure(size, mode, work, enc, turns, base, questions, cubes))
            print(json.dumps(rows[-1]), flush=True)
    out = {"machine": machine(), "load": "nothing else running", "rows": rows}
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
