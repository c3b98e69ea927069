"""``memos remember``: write one memory into a cube or the vault, as it happens."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from memos_cli import config
from memos_cli.api import Session
from memos_cli.cli.cube import EMBEDDER_OPT, JSON_OPT
from memos_cli.cli.cube_args import open_arg
from memos_cli.cli.output import check_as, out, plain, print_json, status
from memos_cli.cli.time_opts import DRY_RUN_OPT
from memos_cli.cli.vault_opts import VAULT_OPT
from memos_cli.errors import UsageError
from memos_cli.validity import parse_time_opt

#: The most text ``remember -`` reads from stdin, in bytes (a memory is a fact, a turn or a
#: paragraph: spec §4.1 bounds it at 1,048,576 code points).
MAX_STDIN = 4 << 20


def remember(
    text: str = typer.Argument(..., metavar="TEXT|-", help="What to remember; - reads it "
                                                          "from stdin."),
    cube: Path | None = typer.Argument(None, metavar="[CUBE]",
                                       help="The .memcube directory \\[default: the vault]."),
    vault: str | None = VAULT_OPT,
    as_user: str | None = typer.Option(None, "--as", metavar="USER[/PERSONA]",
                                       callback=check_as,
                                       help="Whose memory it is \\[default: $MEMOS_USER or "
                                            "the login name]."),
    tag: list[str] = typer.Option([], "--tag", help="A tag (repeatable)."),
    event_time: str | None = typer.Option(
        None, "--event-time", metavar="TIME",
        help="When it happened or became true (ISO 8601) \\[default: now]."),
    key: Path | None = typer.Option(None, "--key", help="A cube: re-sign with this private "
                                    "key \\[default: the configured one]."),
    embedder: Path | None = EMBEDDER_OPT,
    dry_run: bool = DRY_RUN_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Remember one thing: it is decided against the current memories (duplicate, update of
    an older one, or new), written as one audited change to the vault (made on first use) or
    an atomic rewrite of the cube, and the decision is printed.

    Example: [bold]memos remember "The offsite moved to Porto" --tag travel[/bold];
    [bold]echo "I prefer window seats" | memos remember - team.memcube[/bold]
    """
    if text == "-":
        data = sys.stdin.buffer.read(MAX_STDIN + 1)
        if len(data) > MAX_STDIN:
            raise UsageError(f"stdin holds more than {MAX_STDIN >> 20} MiB; a memory is a "
                             "fact, a turn or a paragraph")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise UsageError(f"stdin is not UTF-8 text (byte {e.start})") from None
    if cube is not None and vault is not None:
        raise UsageError("give a cube or --vault, not both")
    when = parse_time_opt(event_time, "--event-time") if event_time is not None else None
    with status("loading embedder") as say:
        session = Session([open_arg(cube)] if cube is not None else [], vault=vault,
                          user=as_user, embedder=embedder, status=say)
        session.query_encoder()
    with session:
        got = session.remember(text, tags=tag, event_time=when,
                               key=config.signing_key(key) if cube is not None else None,
                               dry_run=dry_run)
    if as_json:
        print_json(got.to_dict())
        return
    what = {"duplicate": f"duplicate of {str(got.target)[:8]}: nothing written",
            "update": f"update of {str(got.target)[:8]} ({got.rule}): it is superseded",
            "new": "new"}.get(got.kind, got.kind)
    verb = "would remember" if dry_run else "remembered"
    out.print(plain(f"{verb} {got.memory.id[:8]} in {got.where}: {what}"))


def register(app: typer.Typer) -> None:
    app.command()(remember)
