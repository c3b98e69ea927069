"""``memos chat``: a conversation that retrieves before each answer and remembers after each
turn."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from memos_cli.api import Session
from memos_cli.api.chat import COMMANDS, Chat, Turn
from memos_cli.atomic import atomic_write_bytes
from memos_cli.cli.choices import Extractor
from memos_cli.cli.cube import EMBEDDER_OPT
from memos_cli.cli.cube_args import open_arg
from memos_cli.cli.output import check_as, err, out, plain, status
from memos_cli.cli.vault_opts import VAULT_OPT
from memos_cli.errors import UsageError

#: The longest turn read, in characters (a longer line is refused, the session goes on).
MAX_TURN = 65536


def chat(
    cube: Path | None = typer.Argument(None, metavar="[CUBE]",
                                       help="Chat over this cube \\[default: the vault]."),
    vault: str | None = VAULT_OPT,
    as_user: str | None = typer.Option(None, "--as", metavar="USER[/PERSONA]",
                                       callback=check_as,
                                       help="Who is talking: what is read and written is "
                                            "theirs \\[default: $MEMOS_USER or the login "
                                            "name]."),
    model: str | None = typer.Option(None, "--model", "-m", metavar="DIR|FILE.gguf|HUB_ID",
                                     help="The model that answers \\[default: the "
                                          "configured one]."),
    extract: Extractor = typer.Option("rules", help="How the salient statements of a turn "
                                                    "are found: rules (no model call) or "
                                                    "model (the local model judges each "
                                                    "sentence)."),
    k: int | None = typer.Option(None, "-k", "--top-k", min=1, max=100,
                                 help="Memories retrieved before each answer \\[default: 5; "
                                      "with --context-tokens: as many as fit, up to 100]."),
    context_tokens: int | None = typer.Option(
        None, "--context-tokens", metavar="N", min=1,
        help="Fill each prompt with the best-ranked memories that fit in N tokens."),
    max_new_tokens: int = typer.Option(96, min=1, max=4096,
                                       help="Most tokens of each answer."),
    save: Path | None = typer.Option(None, "--save", metavar="FILE.json",
                                     help="Write the transcript as a chat source (memos pack "
                                          "reads it) when the session ends."),
    no_answer: bool = typer.Option(False, "--no-answer", help="Only remember: no model, no "
                                   "answers (replaying a conversation into memory)."),
    embedder: Path | None = EMBEDDER_OPT,
) -> None:
    """Talk with memory: before each answer the memories are retrieved (tier auto) and shown;
    after each turn its preferences, decisions and facts are remembered (an update
    supersedes what it revises). Commands: /forget ID, /history ID, /why ID, /memories,
    /quit. Without a terminal, one turn is read per line of stdin and one JSON object is
    printed per turn.

    Example: [bold]memos chat --vault ~/vault --as ann[/bold];
    [bold]printf 'My budget is 300,000 euros.\\n' | memos chat --no-answer[/bold]
    """
    if cube is not None and vault is not None:
        raise UsageError("give a cube or --vault, not both")
    if save is not None and save.suffix != ".json":
        raise UsageError(f"--save {save}: a chat source ends in .json")
    interactive = sys.stdin.isatty()
    with status("loading embedder and model") as say:
        session = Session([open_arg(cube)] if cube is not None else [], vault=vault,
                          user=as_user, embedder=embedder, model=model, status=say)
        session.encoder()
        if not no_answer or extract == "model":
            session.chat()
    talk = Chat(session, extract=extract, k=k, answer=not no_answer,
                max_new_tokens=max_new_tokens, context_tokens=context_tokens)
    if interactive:
        err.print(f"memos chat as {session.actor} in {session.where}; "
                  f"{', '.join(COMMANDS)}", markup=False)
    try:
        with session:
            for line in _lines(interactive):
                if not line.strip():
                    continue
                if len(line) > MAX_TURN:
                    err.print(f"error: a turn of {len(line)} characters, over the {MAX_TURN} "
                              "character limit: left out", markup=False)
                    continue
                t = talk.turn(line)
                _show(t, interactive)
                if t.quit:
                    break
    except KeyboardInterrupt:
        pass
    finally:
        if save is not None:
            atomic_write_bytes(save, (json.dumps({"messages": talk.transcript}, indent=2,
                                                 ensure_ascii=False) + "\n").encode())


def _lines(interactive: bool):  # type: ignore[no-untyped-def]
    if not interactive:
        for line in sys.stdin:
            yield line.rstrip("\r\n")
        return
    while True:
        try:
            yield input("you> ")
        except EOFError:
            return


def _show(t: Turn, interactive: bool) -> None:
    if not interactive:
        sys.stdout.write(json.dumps(t.to_dict(), ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    if t.error:
        err.print(f"error: {t.error}", markup=False)
    if t.output is not None:
        out.print(plain(json.dumps(t.output, indent=2, ensure_ascii=False)))
    if t.answer is not None:
        out.print(plain(t.answer))
        for m in t.used:
            out.print(plain(f"  [{m['id'][:8]}] {m['text']}", "dim"))
    for r in t.remembered:
        what = {"update": f"updates {str(r['target'])[:8]}",
                "duplicate": "already known"}.get(r["kind"], "new")
        out.print(plain(f"  remembered {r['id'][:8]} ({r['what']}, {what}): {r['text']}",
                        "dim"))


def register(app: typer.Typer) -> None:
    app.command()(chat)
