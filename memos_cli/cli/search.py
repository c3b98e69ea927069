"""``memos search``: hybrid retrieval over a cube."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from memos_cli.cli.cube import EMBEDDER_OPT, JSON_OPT, load_embedder
from memos_cli.cli.output import check_as, err, out, print_json
from memos_cli.cube import open_verified
from memos_cli.errors import UsageError
from memos_cli.store.usage import UsageStore, cube_store, recording, uses_of
from memos_cli.tiers.plaintext import retrieve


def search(
    cube: str = typer.Argument(..., metavar="[CUBE] QUERY",
                               help="The .memcube directory (left out with --vault)."),
    query: str | None = typer.Argument(None, metavar="", help="What to look for."),
    k: int = typer.Option(5, "-k", "--top-k", help="How many memories to return."),
    vault: Path | None = typer.Option(None, "--vault", metavar="DIR",
                                      help="Search the cubes installed in this vault instead."),
    as_user: str | None = typer.Option(None, "--as", metavar="USER[/PERSONA]", callback=check_as,
                                       help="Only what this user may read \\[default: "
                                            "$MEMOS_USER or the login name]."),
    embedder: Path | None = EMBEDDER_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Find the memories closest to QUERY (vector + full-text, fused by rank) that the user may
    read.

    Example: [bold]memos search team.memcube "budget cap" -k 3[/bold];
    [bold]memos search "budget cap" --vault ~/vault --as ann[/bold]
    """
    from memos_cli.governance import current_user

    if k < 1:
        raise UsageError("-k must be at least 1")
    if vault is not None:
        if query is not None:
            raise UsageError("give a cube or --vault, not both")
        query, where = cube, str(vault)
    elif query is None:
        raise UsageError("missing CUBE or QUERY: give both (memos search team.memcube "
                         "\"budget cap\"), or the query with a vault (memos search "
                         "\"budget cap\" --vault ~/vault)")
    user = as_user or current_user()
    enc = load_embedder(embedder)
    t0 = time.perf_counter()
    hidden: list[int] = []
    if vault is not None:
        from memos_cli.vault import Vault
        from memos_cli.vault import search as vault_search

        v = Vault(vault)
        store = UsageStore(v.path / "usage").warm()
        hits = vault_search(v, enc, query, k, user=user, hidden=hidden)
        took = time.perf_counter() - t0
        v.log(user, "search", memory_ids=[h.memory.id for h in hits], detail={"query": query})
    else:
        c = open_verified(cube)
        where = str(c.path)
        store = cube_store(c.manifest.cube_id).warm()
        hits = retrieve(c, enc, query, k, user=user if as_user else None, hidden=hidden)
        took = time.perf_counter() - t0
        audit(user, "search", c.manifest.cube_id, [h.memory.id for h in hits], query)
    with recording(store, "search", uses_of(hits)):
        _show(query, where, vault is None, took, hits, as_json, sum(hidden), user)


def _show(query: str, where: str, is_cube: bool, took: float, hits: list[Any],
          as_json: bool, hidden: int, user: str) -> None:
    if as_json:
        print_json({"query": query, "cube" if is_cube else "vault": where,
                    "search_s": round(took, 4), "hidden_by_access": hidden,
                    "results": [h.to_dict() for h in hits]})
        return
    if hidden:  # how many, never which
        err.print(f"note: {hidden} of the closest memories are not readable by {user!r} "
                  "(owner, visibility and readers; a memory is private to its owner unless "
                  "packed with --visibility shared/public or --reader)", markup=False)
    t = Table(title=f"{len(hits)} memories for {query!r} ({took * 1000:.0f} ms)",
              title_justify="left")
    for col in ("#", "score", "id", "source", "text"):
        t.add_column(col, overflow="fold")
    for h in hits:
        m = h.memory
        where = (m.source_file or "") + (f":{m.line_start}-{m.line_end}" if m.line_start
                                         else f"#{m.turn_id}" if m.turn_id else "")
        t.add_row(str(h.rank), f"{h.score:.4f}", m.id[:8], where, m.render())
    out.print(t)


def audit(user: str, op: str, cube_id: str, ids: list[str], text: str) -> None:
    """Record a read of a cube in the default vault's access log, when there is a vault."""
    from memos_cli.vault import Vault

    v = Vault(None)
    if v.path.is_dir():
        v.log(user, op, cube_id=cube_id, memory_ids=ids, detail={"query": text})


def register(app: typer.Typer) -> None:
    app.command()(search)
