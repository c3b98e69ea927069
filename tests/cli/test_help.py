"""What a new user meets first: help that shows defaults and plain metavars, global flags
anywhere, completion, exit codes in --help, missing arguments that say what to give (#12)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer._click.core import Context
from typer.testing import CliRunner

from memos_cli.cli.app import app

runner = CliRunner()
WIDE = {"COLUMNS": "250", "TERMINAL_WIDTH": "250"}


def commands() -> list[list[str]]:
    """Every command path, sub-groups included: ["search"], ["vault", "ls"], ..."""
    root = typer.main.get_command(app)
    out: list[list[str]] = []

    def walk(group: typer.core.TyperGroup, path: list[str]) -> None:
        ctx = Context(group)
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            if hasattr(cmd, "list_commands"):
                walk(cmd, [*path, name])
            else:
                out.append([*path, name])
    walk(root, [])  # type: ignore[arg-type]
    return out


def test_every_command_is_listed() -> None:
    assert {"pack", "search", "run", "load"} <= {c[-1] for c in commands()}
    assert ["vault", "ls"] in commands()


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p))
def test_help_shows_defaults_and_plain_metavars(path: list[str]) -> None:
    r = runner.invoke(app, [*path, "--help"], env=WIDE)
    assert r.exit_code == 0, r.output
    text = r.output
    for ugly in ("<str>", "<bool>", "<int>", "<float>", "<path>", "<list"):
        assert ugly not in text
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage and "[]" not in usage
    root = typer.main.get_command(app)
    cmd: typer.core.TyperCommand = root  # type: ignore[assignment]
    for name in path:
        cmd = cmd.get_command(Context(cmd), name)  # type: ignore[attr-defined]
    for p in cmd.params:
        shown = getattr(p, "show_default", True)
        if p.param_type_name != "option" or p.default in (None, False, (), [], "") \
                or shown is False or getattr(p, "is_flag", False):
            continue
        assert f"[default: {p.default}]" in " ".join(text.split()), (p.name, p.default)
    # a default written in a help string reaches the screen (Rich markup used to eat it)
    for p in cmd.params:
        if p.help and "[default:" in p.help:
            words = p.help.split("[default:")[1].split("]")[0].split()[:2]
            assert "[default: " + " ".join(words) in " ".join(text.split()), p.name


def test_root_help_documents_exit_codes_and_environment() -> None:
    text = " ".join(runner.invoke(app, ["--help"], env=WIDE).output.split())
    assert "4 no such cube" in text and "12 disk full" in text and "MEMOS_USER" in text


def test_debug_quiet_and_verbose_work_after_the_subcommand(tmp_path: Path) -> None:
    r = runner.invoke(app, ["verify", str(tmp_path / "none.memcube"), "--debug"])
    assert r.exit_code == 4 and "Traceback" in r.stderr
    r = runner.invoke(app, ["verify", str(tmp_path / "none.memcube"), "-q"])
    assert r.exit_code == 4 and r.stderr.startswith("error: ")  # errors survive --quiet
    assert runner.invoke(app, ["--help", "--verbose"]).exit_code == 0


def test_quiet_silences_notes(tmp_path: Path) -> None:
    src = tmp_path / "notes"
    src.mkdir()
    (src / "a.md").write_text("I like tea.\n")
    (src / "b.exe").write_text("binary")
    loud = runner.invoke(app, ["pack", str(src), "-o", str(tmp_path / "a.memcube")])
    assert loud.exit_code == 0 and "skipped 1 files" in loud.stderr
    quiet = runner.invoke(app, ["pack", str(src), "-o", str(tmp_path / "b.memcube"), "-q"])
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_shell_completion_is_available(monkeypatch: pytest.MonkeyPatch) -> None:
    """With shellingham installed, Typer's --show-completion is a flag that detects the shell
    from the process tree, which depends on how the tests were started; with detection off
    it takes the shell named, as here."""
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    for shell, marker in (("bash", "COMPREPLY"), ("zsh", "#compdef memos")):
        r = runner.invoke(app, ["--show-completion", shell])
        assert r.exit_code == 0 and marker in r.output and "_MEMOS_COMPLETE" in r.output, (
            r.exit_code, r.output[-500:], r.exception)


@pytest.mark.parametrize("args, words", [
    (["search"], "memos search team.memcube"),
    (["run", "What is Ned?"], "memos run team.memcube"),
    (["pack"], "memos pack notes/"),
    (["dump", "x.memcube"], "--output"),
])
def test_missing_arguments_say_what_to_give(args: list[str], words: str, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # a lone question reads the default vault (#28); with none there, it says what to give
    monkeypatch.setenv("MEMOS_VAULT", str(tmp_path / "no-vault"))
    r = runner.invoke(app, args, env=WIDE)
    assert r.exit_code == 2
    assert words in " ".join(r.output.split())


def test_inspect_shows_paths_and_digests_whole_off_a_terminal(packed_cube: Path) -> None:
    """CliRunner output is not a terminal: digests are not cut at 80 columns (#12)."""
    import json as _json

    m = _json.loads((packed_cube / "manifest.json").read_text())
    r = runner.invoke(app, ["inspect", str(packed_cube)])
    assert r.exit_code == 0
    assert m["provenance"]["sources"][0]["sha256"] in r.output
    assert m["embedding"]["fingerprint"] in r.output


def test_no_library_progress_bars_off_a_terminal(tmp_path: Path, tiny_llama: Path) -> None:
    """transformers' and tqdm's bars stay silent unless asked (--verbose) (#12)."""
    import os
    import subprocess
    import sys

    src = tmp_path / "s.jsonl"
    src.write_text('{"content": "tea"}\n')
    env = {**os.environ, "MEMOS_NO_USAGE": "1"}
    for args in (["pack", str(src), "-o", str(tmp_path / "a.memcube")],
                 ["run", str(tmp_path / "a.memcube"), "tea?", "--model", str(tiny_llama),
                  "--tier", "text", "--max-new-tokens", "2"]):
        r = subprocess.run([sys.executable, "-m", "memos_cli", *args], capture_output=True,
                           text=True, env=env, timeout=300)
        assert r.returncode == 0, r.stderr
        assert "%|" not in r.stderr and "Loading weights" not in r.stderr, r.stderr


@pytest.mark.parametrize("args, words", [
    (["run", "x.memcube", "q", "--tier", "bogus"], "'bogus' is not one of 'auto', 'text'"),
    (["search", "x.memcube", "q", "--nope"], "No such option: --nope"),
    (["schedule", "--kv-budget", "1MB", "--policy", "fifo"], "'fifo' is not one of"),
    (["dump", "x.memcube"], "--output"),
    (["nosuch"], "No such command 'nosuch'"),
])
def test_usage_errors_are_one_line(args: list[str], words: str) -> None:
    """#28: usage errors printed five-line boxes; the README promises one line, exit 2."""
    r = runner.invoke(app, args, env=WIDE)
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert r.exit_code == 2 and len(lines) == 1, r.output
    assert lines[0].startswith("error:") and words in lines[0] and "--help" in lines[0]


def test_choice_options_show_and_complete_their_choices() -> None:
    """--tier <auto|text|kv|lora> in help, completed by the shell, and the same words as the
    library's own tuples."""
    import os
    import subprocess
    import sys
    from typing import get_args

    from memos_cli import api
    from memos_cli.api.chat import EXTRACTORS
    from memos_cli.cli import choices
    from memos_cli.cube.kv import STORAGE_DTYPES
    from memos_cli.models.chat import DEVICES
    from memos_cli.scheduler.policy import POLICIES
    from memos_cli.vault import CONFLICT_POLICIES

    for kind, words in [(choices.Tier, api.TIERS), (choices.Compose, api.COMPOSE),
                        (choices.Combine, api.COMBINE),
                        (choices.RecomputeRule, api.RECOMPUTE_RULES),
                        (choices.Device, DEVICES), (choices.Policy, POLICIES),
                        (choices.Dtype, tuple(STORAGE_DTYPES)),
                        (choices.OnConflict, CONFLICT_POLICIES),
                        (choices.Extractor, EXTRACTORS)]:
        assert get_args(kind) == tuple(words)
    text = " ".join(runner.invoke(app, ["run", "--help"], env=WIDE).output.split())
    assert "<auto|text|kv|lora>" in text and "<rerotate|naive>" in text
    env = {**os.environ, "_MEMOS_COMPLETE": "complete_bash", "COMP_WORDS": "memos run --tier ",
           "COMP_CWORD": "3"}
    memos = Path(sys.executable).parent / "memos"  # the console script: its name picks the var
    done = subprocess.run([str(memos)], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["auto", "text", "kv", "lora"], (done.stdout, done.stderr)


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p))
def test_every_command_has_an_example(path: list[str]) -> None:
    """#29: every command's --help shows an example, `memos` and its words."""
    text = " ".join(runner.invoke(app, [*path, "--help"], env=WIDE).output.split())
    assert "Example" in text and f"memos {' '.join(path)}" in text, text[-600:]
