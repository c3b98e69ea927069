"""#28 bug 3: text from a cube or a source is shown as it is by every command's human output,
never read as Rich markup (`- [x] Maria` kept, `[bold red]` not styling, `[link=...]` not a
hyperlink)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memos_cli.cli.app import app

runner = CliRunner()

HOSTILE = ["- [x] Maria brings the [bold red]cake[/bold red] on Friday.",
           "Budget notes: see [link=http://evil.example]the sheet[/link] for the 48,000 cap.",
           "Checklist [/] closed and [dim]hidden[/dim] items of the Kestrel budget."]
#: what a terminal would show of Rich's rendering of a link or a style
TERMINAL_CODES = ("\x1b]8;", "\x1b[")


def run(*args: object, code: int = 0) -> str:
    result = runner.invoke(app, [str(a) for a in args], color=True)
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result.output


@pytest.fixture(scope="module")
def hostile_cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("markup")
    src = d / "notes [draft].jsonl"
    src.write_text("".join(json.dumps({"content": t, "tags": ["[b]tag[/b]"]}) + "\n"
                           for t in HOSTILE))
    cube = d / "team.memcube"
    run("pack", src, "-o", cube, "--description", "[bold]described[/bold] cube",
        "--owner", "tester")
    return cube


def shown_as_is(output: str, texts: list[str]) -> None:
    for t in texts:
        assert t in output, (t, output[-3000:])
    for code in TERMINAL_CODES:
        assert code not in output, output[-3000:]


def test_inspect_search_vault_and_dump_show_text_as_is(hostile_cube: Path,
                                                      tmp_path: Path) -> None:
    shown_as_is(run("inspect", hostile_cube), ["- [x] Maria", "[bold red]cake[/bold red]",
                                               "[link=http://evil.example]the sheet[/link]",
                                               "[bold]described[/bold] cube",
                                               "notes [draft].jsonl"])
    shown_as_is(run("search", hostile_cube, "Maria cake Friday", "-k", "3"),
                ["[x] Maria", "[bold red]cake[/bold red]"])
    vault = tmp_path / "vault"
    run("load", hostile_cube, "--vault", vault, "--allow-unsigned")
    listed = run("vault", "ls", "--vault", vault)
    cube_id = json.loads((hostile_cube / "manifest.json").read_text())["cube_id"]
    assert cube_id in listed
    shown_as_is(run("vault", "show", cube_id, "--vault", vault),
                ["- [x] Maria", "[link=http://evil.example]the sheet[/link]",
                 "[dim]hidden[/dim]"])
    shown_as_is(run("search", "Maria cake", "--vault", vault), ["[bold red]cake[/bold red]"])
    out = tmp_path / "out.md"
    run("dump", hostile_cube, "-o", out)
    shown_as_is(out.read_text(), ["- [x] Maria", "[bold red]cake[/bold red]"])
