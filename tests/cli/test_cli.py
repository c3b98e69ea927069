"""The memos command through Typer's CliRunner, in an isolated MEMOS_HOME; --json is parsed."""

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memos_cli.cli.app import app
from tests.conftest import CORPUS, ROOT
from tests.conftest import invoke as memos

runner = CliRunner()


def as_json(*args: str) -> dict:
    return json.loads(memos(*args, "--json").stdout)


@pytest.fixture(scope="module")
def cli_cube(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("cli")
    keys = as_json("keygen", "-o", d / "team")
    cube = d / "team.memcube"
    data = as_json("pack", CORPUS, "-o", cube, "--key", keys["private_key"],
                   "--description", "fixture corpus", "--tag", "kestrel", "--owner", "tester")
    assert data["memories"] == 18 and data["duplicates_dropped"] == 1 and data["signed"]
    assert oct(os.stat(keys["private_key"]).st_mode & 0o777) == "0o600"
    return cube, Path(keys["public_key"])


def test_help_lists_commands_with_examples() -> None:
    out = memos("--help").stdout
    for cmd in ("keygen", "pack", "inspect", "verify", "search", "reindex", "run"):
        assert cmd in out
        assert "Example" in memos(cmd, "--help").stdout


def test_inspect_json(cli_cube: tuple[Path, Path]) -> None:
    data = as_json("inspect", cli_cube[0], "-n", "2")
    assert data["manifest"]["description"] == "fixture corpus"
    assert data["signed"] is True and len(data["memories"]) == 2
    assert all(m["tags"] == ["kestrel"] and m["owner"] == "tester" for m in data["memories"])
    human = memos("inspect", cli_cube[0]).stdout
    assert "all-MiniLM-L6-v2" in human and "plaintext" in human


def test_verify_json(cli_cube: tuple[Path, Path]) -> None:
    data = as_json("verify", cli_cube[0], "--key", cli_cube[1])
    assert data["ok"] is True and data["signature"] == "verified" and data["memories"] == 18


def test_search_json_finds_budget(cli_cube: tuple[Path, Path]) -> None:
    data = as_json("search", cli_cube[0], "budget cap", "-k", "3")
    assert len(data["results"]) == 3
    assert "48,000 euros" in data["results"][0]["text"]
    scores = [r["score"] for r in data["results"]]
    assert scores == sorted(scores, reverse=True)


def test_pack_options_reach_memories(tmp_path: Path) -> None:
    cube = tmp_path / "g.memcube"
    memos("pack", CORPUS / "facts.jsonl", "-o", cube, "--owner", "ann", "--visibility",
          "shared", "--share-with", "bob", "--ttl", "30d")
    mem = as_json("inspect", cube, "-n", "1")["memories"][0]
    assert (mem["owner"], mem["visibility"], mem["readers"]) == ("ann", "shared", ["bob"])
    assert mem["expires_at"] is not None


def test_source_date_epoch_makes_times_reproducible(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1773489600")
    cube = tmp_path / "r.memcube"
    memos("pack", CORPUS / "notes", "-o", cube)
    data = as_json("inspect", cube, "-n", "1")
    assert data["manifest"]["created_at"] == "2026-03-14T12:00:00.000000Z"
    assert data["memories"][0]["created_at"] == "2026-03-14T12:00:00.000000Z"


@pytest.mark.parametrize("args, code, message", [
    (["pack", "nope.md", "-o", "x.memcube"], 3, "nope.md: no such file or directory"),
    (["pack", "{tmp}/bad.json", "-o", "x.memcube"], 3, "malformed JSON at line 1"),
    (["pack", "{tmp}/doc.pdf", "-o", "x.memcube"], 3, "unsupported file type '.pdf'"),
    (["pack", "{tmp}/empty", "-o", "x.memcube"], 3, "no memories found"),
    (["pack", "{corpus}", "-o", "x.zip"], 2, "must end in .memcube"),
    (["pack", "{corpus}", "-o", "x.memcube", "--ttl", "soon"], 2, "--ttl 'soon'"),
    (["pack", "{corpus}", "-o", "x.memcube", "--key", "{tmp}/none.key"], 9,
     "cannot read private key"),
    (["inspect", "{tmp}/none.memcube"], 4, "no such cube"),
    (["verify", "{tmp}/empty"], 4, "has no manifest.json"),
    (["run", "{tmp}/none.memcube", "q"], 4, "no such cube"),
])
def test_bad_input_one_line_error(tmp_path: Path, monkeypatch, args: list[str], code: int,
                                  message: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("{oops")
    (tmp_path / "doc.pdf").write_bytes(b"%PDF")
    (tmp_path / "empty").mkdir()
    argv = [a.format(tmp=tmp_path, corpus=CORPUS) for a in args]
    result = runner.invoke(app, argv)
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.memcube").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_debug_shows_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--debug", "inspect", str(tmp_path / "none.memcube")])
    assert result.exit_code == 4
    assert "Traceback" in result.stderr


def test_pack_refuses_existing_cube_without_force(cli_cube: tuple[Path, Path], tmp_path: Path
                                                  ) -> None:
    cube = tmp_path / "t.memcube"
    shutil.copytree(cli_cube[0], cube)
    before = (cube / "manifest.json").read_bytes()
    result = runner.invoke(app, ["pack", str(CORPUS), "-o", str(cube)])
    assert result.exit_code == 5 and "already exists" in result.stderr
    assert (cube / "manifest.json").read_bytes() == before
    memos("pack", CORPUS, "-o", cube, "--force")
    assert (cube / "manifest.json").read_bytes() != before


def test_verify_tampered_cube_fails(cli_cube: tuple[Path, Path], tmp_path: Path) -> None:
    cube = tmp_path / "t.memcube"
    shutil.copytree(cli_cube[0], cube)
    idx = cube / "index.arrow"
    idx.write_bytes(idx.read_bytes() + b"\0")
    result = runner.invoke(app, ["verify", str(cube), "--key", str(cli_cube[1])])
    assert result.exit_code == 7  # caught by the index digests (format 1.4) before the key
    assert "does not match the digest" in result.stderr
    assert idx.relative_to(cube).as_posix() in result.stderr


def test_verify_json_reports_a_failure(cli_cube: tuple[Path, Path], tmp_path: Path) -> None:
    """#28 bug 6: a failed `verify --json` printed nothing, so `| jq` got empty input."""
    cube = tmp_path / "t.memcube"
    shutil.copytree(cli_cube[0], cube)
    idx = cube / "index.arrow"
    idx.write_bytes(idx.read_bytes() + b"\0")
    result = runner.invoke(app, ["verify", str(cube), "--key", str(cli_cube[1]), "--json"])
    assert result.exit_code == 7
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["exit_code"] == 7 and report["cube"] == str(cube)
    assert len(report["problems"]) == 1 and "does not match the digest" in report["problems"][0]
    assert "does not match the digest" in result.stderr  # the one-line error as before
    missing = runner.invoke(app, ["verify", str(tmp_path / "nope.memcube"), "--json"])
    assert missing.exit_code == 4 and json.loads(missing.stdout)["ok"] is False


def test_reindex_json_and_signature_state(cli_cube: tuple[Path, Path], tmp_path: Path) -> None:
    cube = tmp_path / "t.memcube"
    shutil.copytree(cli_cube[0], cube)
    data = as_json("reindex", cube)
    assert data["signed"] is False and data["memories"] == 18
    assert as_json("verify", cube)["signature"] == "unsigned"
    assert as_json("search", cube, "Aurelia sensor")["results"][0]["text"].startswith(
        "assistant: The team picked the Aurelia T4")


def test_embedder_mismatch_is_refused(cli_cube: tuple[Path, Path], tmp_path: Path) -> None:
    """A different encoder (same tokenizer, other weights) must not search this index."""
    import torch
    from transformers import BertConfig, BertModel

    from memos_cli.models.embedder import default_embedder_dir

    other = tmp_path / "other-encoder"
    src = default_embedder_dir()
    other.mkdir()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):
        shutil.copy(src / name, other / name)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64)).save_pretrained(other)
    result = runner.invoke(app, ["search", str(cli_cube[0]), "budget", "--embedder", str(other)])
    assert result.exit_code == 11
    assert "index was built with embedder all-MiniLM-L6-v2" in result.stderr
    # and reindexing with it makes it the cube's embedder
    cube = tmp_path / "t.memcube"
    shutil.copytree(cli_cube[0], cube)
    memos("reindex", cube, "--embedder", other)
    assert as_json("search", cube, "budget", "--embedder", other)["results"]


def test_version() -> None:
    assert memos("--version").stdout.startswith("memos ")


def test_readme_shows_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text


@pytest.mark.slow
def test_readme_library_script_runs(tmp_path: Path) -> None:
    """The README's "As a library" script runs as it is, with the real embedder and model."""
    import re
    import subprocess
    import sys

    text = (ROOT / "README.md").read_text()
    script = re.search(r"## As a library.*?```python\n(.*?)```", text, re.S)
    assert script is not None
    path = tmp_path / "readme_script.py"
    path.write_text(script.group(1))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(path)], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("1 ") and "48,000" in proc.stdout, proc.stdout


def test_argument_errors_come_before_the_model_loads(tmp_path: Path) -> None:
    """#28: `pack nope/ -o x.memcube` took 7 s (20 s under load) to say "no such file": the
    sources and the output are checked before the embedder is imported."""
    import subprocess
    import sys

    probe = ("import sys\nfrom memos_cli.cli.app import main\nsys.argv = ['memos', *sys.argv[1:]]\n"
             "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
             "print(code, 'torch' in sys.modules, file=sys.stderr)\n")
    (tmp_path / "folder.memcube").mkdir()
    (tmp_path / "folder.memcube" / "keep.txt").write_text("keep")
    (tmp_path / "a.md").write_text("# A\n\nA note.\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args, code, words in [
            (["pack", str(tmp_path / "nope"), "-o", str(tmp_path / "x.memcube")], 3,
             "no such file"),
            (["pack", str(tmp_path / "a.md"), "-o", str(tmp_path / "folder.memcube"),
              "--force"], 5, "replaces only a cube"),
            (["add", str(tmp_path / "none.memcube"), str(tmp_path / "a.md")], 4, "no such cube")]:
        r = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                           env=env, timeout=120)
        last = r.stderr.strip().splitlines()
        assert last[-1] == f"{code} False", r.stderr  # the exit code, and no torch imported
        assert words in r.stderr


def test_inspect_and_search_name_the_text_alike(cli_cube: tuple[Path, Path]) -> None:
    """#28: inspect --json said "content" where search --json said "text"."""
    shown = as_json("inspect", cli_cube[0])["memories"][0]
    hit = as_json("search", cli_cube[0], shown["content"], "-k", "1")["results"][0]
    assert hit["id"] == shown["id"]
    assert (hit["content"], hit["text"]) == (shown["content"], shown["text"])


@pytest.mark.parametrize("args", [["inspect"], ["verify"], ["load", "--vault", "v"],
                                  ["pack", "-o", "x.memcube"]])
def test_a_name_too_long_is_one_line_not_an_internal_error(tmp_path: Path,
                                                           args: list[str]) -> None:
    """A path over the system's limits (ENAMETOOLONG) used to end in exit 70."""
    long = str(tmp_path / ("x" * 3000))
    r = runner.invoke(app, [args[0], long, *args[1:]])
    assert r.exit_code == 2, r.output
    assert "file name too long" in r.output and "internal error" not in r.output
    assert len(r.output.strip().splitlines()) == 1 and len(r.output) < 400
