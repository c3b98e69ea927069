"""``memos search``: hybrid retrieval over a cube."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from memos_cli.api import SearchResult, Session
from memos_cli.cli.cube import EMBEDDER_OPT, JSON_OPT
from memos_cli.cli.cube_args import is_cube_arg, open_arg, shown
from memos_cli.cli.output import (
    DataTable,
    check_as,
    err,
    out,
    plain,
    print_json,
    progress_bar,
    status,
)
from memos_cli.cli.time_opts import AS_OF_OPT, DATES_OPT, HISTORY_OPT, NOW_OPT
from memos_cli.cli.vault_opts import require_default_vault
from memos_cli.errors import SourceError, UsageError
from memos_cli.sources.base import parse_lines, read_lines
from memos_cli.validity import View, view_of
from memos_cli.validity import note as validity_note


def search(
    cube: str | None = typer.Argument(None, metavar="[CUBE] [QUERY]",
                                      help="The .memcube directory (left out with --vault)."),
    query: str | None = typer.Argument(None, metavar="", help="What to look for."),
    queries: Path | None = typer.Option(
        None, "--queries", metavar="FILE.jsonl",
        help="Answer many queries in one process: one JSON object a line, {\"query\": ..., "
             "\"id\": ..., \"k\": ...} (id and k optional); one result line each."),
    k: int = typer.Option(5, "-k", "--top-k", min=1, max=1000,  # MAX_K
                          help="How many memories to return (1 to 1000)."),
    vault: str | None = typer.Option(None, "--vault", metavar="DIR|URI",
                                      help="Search the cubes installed in this vault instead."),
    as_user: str | None = typer.Option(None, "--as", metavar="USER[/PERSONA]", callback=check_as,
                                       help="Only what this user may read \\[default: "
                                            "$MEMOS_USER or the login name]."),
    as_of: str | None = AS_OF_OPT,
    history: bool = HISTORY_OPT,
    now: str | None = NOW_OPT,
    dates: bool = DATES_OPT,
    embedder: Path | None = EMBEDDER_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Find the memories closest to QUERY (vector + full-text, fused by rank) that the user may
    read; current memories only, unless --as-of or --history.

    Example: [bold]memos search team.memcube "budget cap" -k 3[/bold];
    [bold]memos search team.memcube "budget cap" --as-of 2026-02-01[/bold];
    [bold]memos search "budget cap" --vault ~/vault --as ann[/bold];
    [bold]memos search team.memcube --queries eval.jsonl --json[/bold]
    """
    if k < 1:
        raise UsageError("-k must be at least 1")
    view = view_of(as_of, history, now, dates)
    missing = ("missing CUBE or QUERY: give both (memos search team.memcube \"budget cap\"), "
               "or the query with a vault (memos search \"budget cap\" --vault ~/vault)")
    if queries is not None:
        if query is not None or (vault is not None and cube is not None):
            raise UsageError("--queries takes the queries from the file: give only the cube "
                             "(or --vault)")
        if vault is None and cube is None:
            raise UsageError("missing CUBE: memos search CUBE --queries FILE.jsonl")
        _batch(cube, vault, QueryFile(queries, k), as_user, embedder, as_json, view)
        return
    if cube is None:
        raise UsageError("missing QUERY: memos search team.memcube \"budget cap\"")
    if vault is not None:
        if query is not None:
            raise UsageError("give a cube or --vault, not both")
        query, cube = cube, None
    elif query is None:
        if is_cube_arg(cube):
            raise UsageError(missing)
        query, cube = cube, None  # the query alone: the default vault's
        require_default_vault(missing)
    with status("loading embedder") as say:
        session = Session([open_arg(cube)] if cube is not None else [], vault=vault,
                          user=as_user, embedder=embedder, status=say)
        session.query_encoder()
    with session:  # the usage record is written while the results are shown
        result = session.search(query, k, view)
        if cube is not None:
            result.where = shown(session.cubes[0].path)
        _show(result, as_json, as_of)


MAX_QUERIES = 1_000_000
#: The most results one query may ask for (``-k`` and a queries file's ``k``).
MAX_K = 1000


class QueryFile:
    """The ``(id, query, k)`` of each line of a queries file, checked whole before any search
    runs (a bad last line fails before the first search) and then streamed: one line is held
    at a time, so a file of a million queries costs no more memory than one of ten.

    Raises:
        SourceError: unreadable, malformed JSON, or a line that is not an object with a
            string ``query`` and, when given, a ``k`` from 1 to :data:`MAX_K` (naming the
            line); more than :data:`MAX_QUERIES` lines. Raised by the constructor, and again
            while iterating if the file changed in between.
    """

    def __init__(self, path: Path, k: int) -> None:
        self.path, self.k = path, k
        self.count = sum(1 for _ in self._lines())

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[Any, str, int]]:
        return self._lines()

    def _lines(self) -> Iterator[tuple[Any, str, int]]:
        path = self.path
        for n, (lineno, obj) in enumerate(parse_lines(read_lines(path), path), start=1):
            if not isinstance(obj, dict) or not isinstance(obj.get("query"), str):
                raise SourceError(f"line {lineno}: not an object with a \"query\" string",
                                  path=path)
            kk = obj.get("k", self.k)
            if isinstance(kk, bool) or not isinstance(kk, int) or not 1 <= kk <= MAX_K:
                raise SourceError(f"line {lineno}: \"k\" is not an integer from 1 to {MAX_K}",
                                  path=path)
            if n > MAX_QUERIES:
                raise SourceError(f"more than {MAX_QUERIES} queries", path=path)
            yield obj.get("id", lineno), obj["query"], kk


def _batch(cube: str | None, vault: str | None, items: QueryFile,
           as_user: str | None, embedder: Path | None, as_json: bool, view: View) -> None:
    """Search each query of a queries file in this one process; JSON lines with --json."""
    import json

    with status("loading embedder") as say:
        session = Session([open_arg(cube)] if cube is not None else [], vault=vault,
                          user=as_user, embedder=embedder, status=say)
        session.query_encoder()
    where = {"vault": str(vault)} if vault is not None else {"cube": str(session.cubes[0].path)}
    with session, progress_bar() as update:  # on a terminal only; nothing in a pipe
        for done, (qid, result) in enumerate(session.search_many(items, view), start=1):
            update("searching", done, len(items))
            if as_json:
                line = {"id": qid, "query": result.query, **where,
                        "search_s": round(result.search_s, 4),
                        "hidden_by_access": result.hidden,
                        "results": [h.to_dict() for h in result.hits]}
                typer.echo(json.dumps(line, ensure_ascii=False))
            else:
                ids = " ".join(f"{h.rank}:{h.memory.id[:8]}" for h in result.hits)
                typer.echo(f"{qid}\t{result.search_s * 1000:.0f} ms\t{ids}")  # for cut/awk


def _show(result: SearchResult, as_json: bool, as_of: str | None = None) -> None:
    if as_json:
        print_json(result.to_dict())
        return
    hidden, user, hits, query = result.hidden, result.user, result.hits, result.query
    took = result.search_s
    if hidden:  # how many, never which
        err.print(f"note: {hidden} of the closest memories are not readable by {user!r} "
                  "(owner, visibility and readers; a memory is private to its owner unless "
                  "packed with --visibility shared/public or --share-with)", markup=False)
    if not hits and as_of is not None:
        err.print(f"note: no memory was valid at --as-of {as_of}. A memory is valid from its "
                  "event time, else from when it was packed or added; --history shows every "
                  "memory", markup=False)
    t = DataTable(title=f"{len(hits)} memories for {query!r} ({took * 1000:.0f} ms)",
              title_justify="left")
    for col in ("#", "score", "id", "source", "text"):
        t.add_column(col, overflow="fold")
    for h in hits:
        m = h.memory
        where = (m.source_file or "") + (f":{m.line_start}-{m.line_end}" if m.line_start
                                         else f"#{m.turn_id}" if m.turn_id else "")
        text = plain(m.render())
        if (gone := validity_note(m)) is not None:
            text.append(f"\n  {gone}", style="dim")
        if h.precedes:  # put above a memory that ranked higher (§4.6)
            text.append(f"\n  ranked above {h.precedes['id'][:8]}: {h.precedes['reason']}",
                        style="dim")
        if getattr(h, "via", "memory") != "memory":  # found through a reader's text
            text.append(f"\n  matched {h.via}" + (f": {h.matched}" if h.matched else ""),
                        style="dim")
        t.add_row(str(h.rank), f"{h.score:.4f}", m.id[:8], where, text)
    out.print(t)


def register(app: typer.Typer) -> None:
    app.command()(search)
