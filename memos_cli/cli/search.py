"""``memos search``: hybrid retrieval over a cube."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from memos_cli.cli.cube import EMBEDDER_OPT, JSON_OPT, load_embedder
from memos_cli.cli.output import out, print_json
from memos_cli.cube import open_cube
from memos_cli.errors import UsageError
from memos_cli.tiers.plaintext import retrieve


def search(
    cube: Path = typer.Argument(..., help="The .memcube directory."),
    query: str = typer.Argument(..., help="What to look for."),
    k: int = typer.Option(5, "-k", "--top-k", help="How many memories to return."),
    embedder: Path | None = EMBEDDER_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Find the memories closest to QUERY (vector + full-text, fused by rank).

    Example: [bold]memos search team.memcube "budget cap" -k 3[/bold]
    """
    if k < 1:
        raise UsageError("-k must be at least 1")
    c = open_cube(cube)
    enc = load_embedder(embedder)
    t0 = time.perf_counter()
    hits = retrieve(c, enc, query, k)
    took = time.perf_counter() - t0
    if as_json:
        print_json({"query": query, "cube": str(c.path), "search_s": round(took, 4),
                    "results": [h.to_dict() for h in hits]})
        return
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


def register(app: typer.Typer) -> None:
    app.command()(search)
