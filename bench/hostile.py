"""Hostile-input benchmark: every case of the corpus (tests/attacks/corpus.py) through every
command it names, each in its own process with a time limit and its peak RSS measured, plus
the memory bound of `memos pack` per input byte. Writes docs/hostile.json and prints the
README table.

    python bench/hostile.py [--workers 2] [--timeout 120] [--only PREFIX[,PREFIX...]]
                            [--strace | --tty]

Registry cases run against the hostile registry of ``tests/attacks/hostile_registry.py`` on
127.0.0.1; model cases get ``y`` on stdin (no terminal). With ``--tty`` every command runs
on a terminal with ``y`` lines typed in, and its refusal is read from the terminal's final
screen (a control character in the data is then the emulator's to interpret, so that check
is left to the runs without a terminal).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.attacks.corpus import (  # noqa: E402
    Base,
    Case,
    Outcome,
    all_cases,
    check,
    commands,
    make_vault,
    tree_digest,
)
from tests.attacks.hostile_registry import serve  # noqa: E402

PEAK = ("import resource, subprocess, sys\n"
        "try:\n"
        "    r = subprocess.run(sys.argv[2:], capture_output=True, timeout=float(sys.argv[1]),\n"
        "                       stdin=sys.stdin)\n"
        "    code, out, err = r.returncode, r.stdout, r.stderr\n"
        "except subprocess.TimeoutExpired as e:\n"
        "    code, out, err = -9, e.stdout or b'', e.stderr or b''\n"
        "sys.stdout.buffer.write(out); sys.stderr.buffer.write(err)\n"
        "print('\\n@@', code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
MEMOS = [sys.executable, "-m", "memos_cli"]


def run_measured(args: list[str], timeout: float, env: dict[str, str],
                 stdin: bytes = b"", trace: Path | None = None) -> Outcome:
    t0 = time.perf_counter()
    wrap = ["strace", "-f", "-qq", "-y", "-e", "trace=open,openat,openat2", "-e",
            "status=successful", "-o", str(trace)] if trace is not None else []
    r = subprocess.run([sys.executable, "-c", PEAK, str(timeout), *wrap, *MEMOS, *args],
                       capture_output=True, timeout=timeout + 60, env=env, input=stdin)
    out = r.stdout.decode("utf-8", "replace")
    body, _, tail = out.rpartition("\n@@ ")
    code, kib = (int(x) for x in tail.split())
    o = Outcome("", args[0], code, body, r.stderr.decode("utf-8", "replace"),
                time.perf_counter() - t0, kib, hung=code == -9)
    return o


def make_base(tmp: Path) -> Base:
    from memos_cli.cube import generate_keypair
    from memos_cli.models.embedder import Embedder
    from tests.conftest import make_tiny_llama, pack_corpus

    priv, pub = generate_keypair(tmp / "key")
    cube = tmp / "base.memcube"
    pack_corpus(cube, Embedder(), key=priv)  # the cube the tests' corpus starts from
    model = make_tiny_llama(tmp / "tiny")
    kv = tmp / "kv.memcube"
    shutil.copytree(cube, kv)
    subprocess.run([*MEMOS, "convert", str(kv), "--to", "kv", "--model", str(model)],
                   check=True, capture_output=True)
    _, port = serve(cube)  # a daemon thread: it ends with the bench
    return Base(cube, kv, model, pub, f"127.0.0.1:{port}",
                make_vault(cube, tmp / "vault", key=priv), priv)


OPENED = re.compile(r'^\d+\s+open(?:at2?)?\((?:[^,]+, )?"((?:[^"\\]|\\.)*)".*= \d+<(.*)>$')


def outside_reads(trace: Path, work: Path) -> list[str]:
    """Files a command opened (``strace -y``: the path given, and the file it resolved to)
    that lie where the case's links point: under ``work/outside``, or ``/etc/passwd`` reached
    through a path inside the case (the interpreter itself reads ``/etc/passwd`` for the
    login name, by that name)."""
    found = []
    outside = str(work.resolve() / "outside")
    for line in trace.read_text("utf-8", "replace").splitlines():
        m = OPENED.match(line)
        if m is None:
            continue
        given, resolved = m[1], m[2]
        if resolved.startswith(outside + "/") or resolved == outside or (
                resolved == "/etc/passwd" and given != "/etc/passwd"):
            found.append(f"{given} -> {resolved}")
    return found


def run_on_terminal(args: list[str], timeout: float, env: dict[str, str]) -> Outcome:
    """One command on a terminal (bench/terminal.py) with ``y`` lines on stdin, as a person
    answering yes to any question would."""
    from bench.terminal import on_terminal  # pyte comes with the bench extras only

    t0 = time.perf_counter()
    shown = on_terminal([*MEMOS, *args], timeout, env, b"y\n" * 8)
    return Outcome("", args[0], shown.code, shown.stdout, shown.stderr,
                   time.perf_counter() - t0, shown.peak_kib, hung=shown.hung)


def run_case(case: Case, base: Base, root: Path, timeout: float, env: dict[str, str],
             strace: bool = False, tty: bool = False) -> list[Outcome]:
    work = root / case.name
    work.mkdir(parents=True)
    path = case.build(work, base)
    outs = []
    env = {**env, **case.environment(base)}
    for n, args in enumerate(commands(case, path, work, base)):
        before, vault_before = tree_digest(path), tree_digest(work / "vault")
        outside = tree_digest(work / "outside")
        trace = root / f"{case.name}.{n}.strace" if strace else None
        # "y" answers transformers' question whether to run a model's code
        o = run_on_terminal(args, timeout, env) if tty else run_measured(
            args, timeout, env, b"y\n" * 8 if case.target == "model" else b"", trace)
        o.case = case.name
        o.problems = check(case, path, o, input_before=before, input_after=tree_digest(path),
                           vault_before=vault_before, vault_after=tree_digest(work / "vault"),
                           work=work, outside_before=outside,
                           outside_after=tree_digest(work / "outside"))
        if trace is not None and trace.is_file():
            o.problems += [f"read outside the input: {r}" for r in outside_reads(trace, work)]
            trace.unlink()
        outs.append(o)
    shutil.rmtree(work, ignore_errors=True)
    return outs


def memory_bound(tmp: Path, env: dict[str, str]) -> dict[str, float]:
    from tests.attacks.test_memory_bound import write_lines

    ref = tmp / "ref.jsonl"
    write_lines(ref, 64, 2400, emoji=False)
    rows: dict[str, float] = {}
    base = run_measured(["pack", str(ref), "-o", str(tmp / "ref.memcube")], 600, env)
    rows["reference_peak_mib"] = base.peak_kib / 1024
    for name, n, chars, emoji in (("ascii_48x1MB", 48, 1_000_000, False),
                                  ("emoji_24x1MB", 24, 1_000_000, True),
                                  ("tiny_200k_lines", 200_000, 8, False)):
        src = tmp / f"{name}.jsonl"
        size = write_lines(src, n, chars, emoji)
        o = run_measured(["pack", str(src), "-o", str(tmp / f"{name}.memcube")], 600, env)
        rows[f"{name}_input_mib"] = size / 2**20
        rows[f"{name}_peak_mib"] = o.peak_kib / 1024
        rows[f"{name}_per_input_byte"] = (o.peak_kib - base.peak_kib) * 1024 / size
        rows[f"{name}_exit"] = o.exit_code
    one = tmp / "one.jsonl"
    with one.open("w") as f:  # the audit's input: one line of 400 MB
        f.write('{"content": "' + "word " * (80 << 20) + '"}\n')
    o = run_measured(["pack", str(one), "-o", str(tmp / "one.memcube")], 600, env)
    rows.update(one_line_400mb_peak_mib=o.peak_kib / 1024, one_line_400mb_s=o.seconds,
                one_line_400mb_exit=o.exit_code)
    one.unlink()
    return rows


#: Classes whose cases are pytest tests (each sets up MEMOS_HOME or kills processes in its own
#: way), run here as they are in ``make test`` and counted by outcome.
TESTED_CLASSES = {"MEMOS_HOME": ["tests/attacks/test_hostile_home.py"],
                  "concurrency and kills": ["tests/attacks/test_concurrency.py",
                                            "tests/attacks/test_memory_api_kills.py",
                                            "tests/attacks/test_disk_full.py"]}


def tested_classes(tmp: Path) -> dict[str, dict[str, int]]:
    """``{class: {"tests", "passed", "failed", "skipped"}}`` from a pytest run of each."""
    import xml.etree.ElementTree as ET

    out = {}
    for name, files in TESTED_CLASSES.items():
        xml = tmp / f"{name.split()[0]}.xml"
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        f"--junitxml={xml}", *files], cwd=ROOT, capture_output=True,
                       timeout=1800)
        suite = ET.parse(xml).getroot().find("testsuite")
        assert suite is not None
        n, bad = int(suite.get("tests", 0)), int(suite.get("failures", 0)) + int(
            suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        out[name] = {"tests": n, "passed": n - bad - skipped, "failed": bad,
                     "skipped": skipped}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--only", default="")
    ap.add_argument("--remote-timeout", default="30",
                    help="MEMOS_REMOTE_TIMEOUT for the registry cases (trickles end at 3x)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "hostile.json"))
    ap.add_argument("--strace", action="store_true",
                    help="run each command under strace and count reads outside the input")
    ap.add_argument("--tty", action="store_true",
                    help="run each command on a terminal (stdin, stdout and stderr), with "
                         "'y' lines typed in")
    a = ap.parse_args()
    cases = [c for c in all_cases() if c.name.startswith(tuple(a.only.split(",")))]
    with tempfile.TemporaryDirectory(prefix="memos-hostile-") as t:
        tmp = Path(t)
        env = {**os.environ, "MEMOS_HOME": str(tmp / "home"), "MEMOS_NO_USAGE": "1",
               "PYTHONPATH": str(ROOT), "MEMOS_REMOTE_TIMEOUT": a.remote_timeout}
        base = make_base(tmp)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(a.workers) as pool:
            results = list(pool.map(lambda c: run_case(c, base, tmp / "cases", a.timeout, env,
                                                       a.strace, a.tty), cases))
        wall = time.perf_counter() - t0
        bound = memory_bound(tmp, env) if not (a.only or a.tty) else {}
        tested = tested_classes(tmp) if not a.only else {}
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    klass: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    target = {c.name: c.target for c in cases}
    worst: dict[str, tuple[int, str]] = {}
    failures = []
    for outs in results:
        for o in outs:
            row = per[o.command]
            row["tried"] += 1
            row["refused"] += o.exit_code not in (0, 70) and not o.hung
            row["accepted"] += o.exit_code == 0
            row["internal"] += o.exit_code == 70
            row["hung"] += o.hung
            row["code_run"] += any("code from the input" in p for p in o.problems)
            row["state_changed"] += any("changed" in p for p in o.problems)
            row["other_problems"] += bool(o.problems)
            k = klass[target[o.case]]
            k["runs"] += 1
            k["internal"] += o.exit_code == 70
            k["hung"] += o.hung
            k["code_run"] += any("code from the input" in p for p in o.problems)
            k["outside_writes"] += any("wrote outside the input" in p for p in o.problems)
            k["outside_reads"] += any("read outside the input" in p for p in o.problems)
            k["leaks"] += any("access leak" in p for p in o.problems)
            k["problems"] += bool(o.problems)
            if o.peak_kib > worst.get(o.command, (0, ""))[0]:
                worst[o.command] = (o.peak_kib, o.case)
            failures += [f"{o.case} / {o.command}: {p}" for p in o.problems]
    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} "
                         f"cores, Python {platform.python_version()}",
              "terminal": a.tty, "strace": a.strace,
              "remote_timeout_s": float(a.remote_timeout),
              "cases": len(cases), "wall_s": round(wall, 1),
              "per_command": {k: dict(v) for k, v in sorted(per.items())},
              "per_class": {k: {**dict(v), "cases": sum(1 for c in cases if c.target == k)}
                            for k, v in sorted(klass.items())},
              "worst_peak": {k: {"mib": round(v[0] / 1024, 1), "case": v[1]}
                             for k, v in worst.items()},
              "memory_bound": {k: round(v, 2) for k, v in bound.items()},
              "tested_classes": tested,
              "problems": failures}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{len(cases)} cases, {sum(r['tried'] for r in per.values())} commands, "
          f"{wall:.0f} s; {report['machine']}")
    print("| command | tried | named refusals | accepted | internal errors | hangs | "
          "code run | state changed | worst peak RSS (case) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for cmd, r in sorted(per.items()):
        mib, case = worst[cmd]
        print(f"| `{cmd}` | {r['tried']} | {r['refused']} | {r['accepted']} | {r['internal']} "
              f"| {r['hung']} | {r['code_run']} | {r['state_changed']} | "
              f"{mib / 1024:.0f} MiB ({case}) |")
    print("| class | cases | runs | internal errors | hangs | code run | writes outside | "
          "reads outside | access leaks | runs with a problem |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k, r in report["per_class"].items():
        reads = r.get("outside_reads", 0) if a.strace else "-"
        print(f"| {k} | {r['cases']} | {r['runs']} | {r['internal']} | {r['hung']} | "
              f"{r['code_run']} | {r['outside_writes']} | {reads} | {r['leaks']} | "
              f"{r['problems']} |")
    for k, r in tested.items():
        print(f"| {k} (pytest) | {r['tests']} tests: {r['passed']} passed, {r['failed']} "
              f"failed, {r['skipped']} skipped |")
    print(json.dumps(report["memory_bound"], indent=1))
    for f in failures:
        print("PROBLEM", f)
    return 1 if failures or any(r["failed"] for r in tested.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
