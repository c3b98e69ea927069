"""The hostile-input corpus (``corpus.py``), every case through every command it names, in
process: no internal error, no traceback, no raw control character, one named refusal line,
input and vault unchanged by a refusal, no code run, nothing hung."""

from __future__ import annotations

import faulthandler
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memos_cli.cli.app import app
from tests.attacks.corpus import (
    Base,
    Case,
    Outcome,
    all_cases,
    check,
    commands,
    make_vault,
    tree_digest,
)
from tests.attacks.hostile_registry import serve

CASES = all_cases()
#: A command that takes longer than this in process is a hang: faulthandler ends the run.
HANG_S = 300


@pytest.fixture(scope="session")
def base(packed_cube: Path, tiny_llama: Path, keys: tuple[Path, Path],
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    kv = tmp_path_factory.mktemp("corpus") / "kv.memcube"
    shutil.copytree(packed_cube, kv)
    r = subprocess.run([sys.executable, "-m", "memos_cli", "convert", str(kv), "--to", "kv",
                        "--model", str(tiny_llama)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    server, port = serve(packed_cube)
    vault = make_vault(packed_cube, tmp_path_factory.mktemp("corpus-vault") / "vault",
                       key=keys[0])
    yield Base(packed_cube, kv, tiny_llama, keys[1], f"127.0.0.1:{port}", vault, keys[0])
    server.shutdown()


def run_case(case: Case, base: Base, work: Path) -> list[Outcome]:
    path = case.build(work, base)
    runner = CliRunner()
    outcomes = []
    for args in commands(case, path, work, base):
        before, vault_before = tree_digest(path), tree_digest(work / "vault")
        outside_before = tree_digest(work / "outside")
        faulthandler.dump_traceback_later(HANG_S, exit=True)
        t0 = time.perf_counter()
        try:
            # "y" answers transformers' question whether to run a model's code
            r = runner.invoke(app, args, input="y\n" * 8 if case.target == "model" else None)
        finally:
            faulthandler.cancel_dump_traceback_later()
        out = Outcome(case.name, args[0], r.exit_code, r.stdout, r.stderr,
                      time.perf_counter() - t0)
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            out.problems.append(f"exception escaped: {r.exception!r}")
        out.problems += check(case, path, out, input_before=before,
                              input_after=tree_digest(path), vault_before=vault_before,
                              vault_after=tree_digest(work / "vault"), work=work,
                              outside_before=outside_before,
                              outside_after=tree_digest(work / "outside"))
        outcomes.append(out)
    return outcomes


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 120
    assert {c.target for c in CASES} == {"cube", "kv", "source", "registry", "model",
                                           "bucket", "vault"}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case(case: Case, base: Base, tmp_path: Path,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMOS_NO_USAGE", "1")
    monkeypatch.setenv("MEMOS_REMOTE_TIMEOUT", "1")  # the trickling registry cases
    for name, value in case.environment(base).items():
        monkeypatch.setenv(name, value)
    outcomes = run_case(case, base, tmp_path)
    problems = [f"{o.command}: {p}" for o in outcomes for p in o.problems]
    assert not problems, "\n".join(problems)
