"""``memos history``: a memory's supersession chain and versions, with the reason for each
decision (spec §4.6)."""

from __future__ import annotations

from pathlib import Path

import typer

from memos_cli.api import MemoryHistory, Session
from memos_cli.cli.cube import JSON_OPT
from memos_cli.cli.cube_args import open_arg
from memos_cli.cli.output import DataTable, check_as, out, plain, print_json
from memos_cli.cli.vault_opts import VAULT_OPT
from memos_cli.memory import Memory


def history(
    memory_id: str = typer.Argument(..., metavar="MEMORY_ID",
                                    help="The memory (an id, or 4+ leading characters)."),
    cube: Path | None = typer.Argument(None, metavar="[CUBE]",
                                       help="The .memcube directory \\[default: the vault]."),
    vault: str | None = VAULT_OPT,
    as_user: str | None = typer.Option(None, "--as", metavar="USER[/PERSONA]", callback=check_as,
                                       help="Only what this user may read."),
    as_json: bool = JSON_OPT,
) -> None:
    """Show how a memory changed: the memories it superseded and those that superseded it,
    oldest first, with their valid times and the rule that decided each supersession (which
    values differed).

    Example: [bold]memos history 3f2a9c1e team.memcube[/bold];
    [bold]memos history 3f2a9c1e --vault ~/vault --json[/bold]
    """
    cubes = [open_arg(cube)] if cube is not None else []
    with Session(cubes, vault=vault if not cubes else None, user=as_user) as session:
        h = session.history(memory_id)
    if as_json:
        print_json(h.to_dict())
        return
    show(h)


def _status(m: Memory) -> str:
    if m.superseded_by:
        return f"superseded by {m.superseded_by[:8]}"
    if m.valid_to is not None:
        return "ended"
    return "current"


def show(h: MemoryHistory) -> None:
    """The history as a table, oldest first."""
    t = DataTable(title=f"history of {h.memory_id}" + ("" if h.current else " (not current)"),
                  title_justify="left")
    for col in ("id", "v", "valid from", "valid to", "status", "decision", "text"):
        t.add_column(col, overflow="fold")
    for m in h.versions:
        why = ""
        if m.supersession:
            rec = m.supersession
            changed = ", ".join(f"{a} -> {b}" for a, b in _pairs(rec))
            why = f"{rec.get('rule', '')} ({rec.get('score', 0):.2f})" + \
                (f": {changed}" if changed else "")
        t.add_row(m.id[:8], str(m.version), m.valid_from.strftime("%Y-%m-%d"),
                  m.valid_to.strftime("%Y-%m-%d") if m.valid_to else "",
                  _status(m), plain(why), plain(m.render()))
    out.print(t)
    for e in h.events:
        out.print(plain(f"{e.get('time', '')} {e.get('user', '')} {e.get('op', '')} "
                        f"{' '.join(i[:8] for i in e.get('memory_ids') or [])}"))


def _pairs(rec: dict[str, object]) -> list[tuple[str, str]]:
    old = [str(x) for x in rec.get("from") or []]  # type: ignore[attr-defined]
    new = [str(x) for x in rec.get("to") or []]  # type: ignore[attr-defined]
    if not old and not new:
        return []
    return [(" ".join(old) or "-", " ".join(new) or "-")]


def register(app: typer.Typer) -> None:
    app.command()(history)
