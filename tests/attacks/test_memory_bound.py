"""Peak memory of `memos pack` per input byte (#11 item 1), measured as the child's peak RSS.

The bound (README, "Hostile input"): packing an input of B bytes peaks at most 4 B above
packing a small reference corpus that fills one embedding batch (the model, one batch and
LanceDB are a fixed cost). Giants are refused by size before they are read.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

MEMOS = [sys.executable, "-m", "memos_cli"]
#: Runs a command and prints its peak RSS in KiB (Linux ru_maxrss of the waited-for child).
PEAK = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True);"
        "sys.stderr.buffer.write(r.stderr);"
        "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
WORDS = ["tea", "river", "quiet", "mountain", "budget", "blue", "coffee", "delta"]


def peak(*args: object) -> tuple[int, int, str]:
    """(exit code, peak RSS in bytes, stderr) of one memos command in its own process."""
    r = subprocess.run([sys.executable, "-c", PEAK, *MEMOS, *map(str, args)],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "MEMOS_NO_USAGE": "1"})
    code, kib = r.stdout.split()
    return int(code), int(kib) * 1024, r.stderr


def write_lines(path: Path, n: int, chars: int, emoji: bool) -> int:
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            text = " ".join(rng.choice(WORDS) for _ in range(chars // 5))[:chars]
            # one character outside Latin-1 makes CPython store the whole string at 4 bytes
            # a character: the worst case for memory per input byte
            f.write(json.dumps({"content": f"{i} {'😀 ' if emoji else ''}{text}"},
                               ensure_ascii=False) + "\n")
    return path.stat().st_size


def test_pack_peak_memory_is_at_most_4x_the_input(tmp_path: Path) -> None:
    ref = tmp_path / "ref.jsonl"
    write_lines(ref, 64, 2400, emoji=False)
    big = tmp_path / "big.jsonl"
    size = write_lines(big, 24, 1_000_000, emoji=True)
    code, base, err = peak("pack", ref, "-o", tmp_path / "ref.memcube")
    assert code == 0, err
    code, used, err = peak("pack", big, "-o", tmp_path / "big.memcube")
    assert code == 0, err
    assert used - base <= 4 * size, (used - base) / size


def test_giant_line_is_refused_without_reading_it(tmp_path: Path) -> None:
    one = tmp_path / "one.jsonl"
    with one.open("w") as f:  # 64 MiB on one line, far past the 4 MiB line limit
        f.write('{"content": "' + "word " * (64 << 18) + '"}\n')
    code, used, err = peak("pack", one, "-o", tmp_path / "o.memcube")
    assert code == 3 and "line limit" in err
    assert used < 600 << 20  # the interpreter and imports, not the line
