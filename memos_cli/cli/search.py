"""``memos search``: hybrid retrieval over a cube."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.text import Text

from memos_cli.cli.cube import EMBEDDER_OPT, JSON_OPT
from memos_cli.cli.cube_args import open_arg, shown
from memos_cli.cli.output import DataTable, check_as, err, out, print_json
from memos_cli.errors import UsageError
from memos_cli.store.usage import UsageStore, cube_store, recording, uses_of
from memos_cli.tiers.plaintext import retrieve


def search(
    cube: str | None = typer.Argument(None, metavar="[CUBE] [QUERY]",
                                      help="The .memcube directory (left out with --vault)."),
    query: str | None = typer.Argument(None, metavar="", help="What to look for."),
    queries: Path | None = typer.Option(
        None, "--queries", metavar="FILE.jsonl",
        help="Answer many queries in one process: one JSON object a line, {\"query\": ..., "
             "\"id\": ..., \"k\": ...} (id and k optional); one result line each."),
    k: int = typer.Option(5, "-k", "--top-k", help="How many memories to return."),
    vault: str | None = typer.Option(None, "--vault", metavar="DIR|URI",
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
    [bold]memos search "budget cap" --vault ~/vault --as ann[/bold];
    [bold]memos search team.memcube --queries eval.jsonl --json[/bold]
    """
    from memos_cli.governance.policy import current_user

    if k < 1:
        raise UsageError("-k must be at least 1")
    if queries is not None:
        if query is not None or (vault is not None and cube is not None):
            raise UsageError("--queries takes the queries from the file: give only the cube "
                             "(or --vault)")
        if vault is None and cube is None:
            raise UsageError("missing CUBE: memos search CUBE --queries FILE.jsonl")
        _batch(cube, vault, read_queries(queries, k), as_user, embedder, as_json)
        return
    if cube is None:
        raise UsageError("missing QUERY: memos search team.memcube \"budget cap\"")
    if vault is not None:
        if query is not None:
            raise UsageError("give a cube or --vault, not both")
        query, where = cube, str(vault)
    elif query is None:
        raise UsageError("missing CUBE or QUERY: give both (memos search team.memcube "
                         "\"budget cap\"), or the query with a vault (memos search "
                         "\"budget cap\" --vault ~/vault)")
    user = as_user or current_user()
    enc = query_embedder(embedder)
    t0 = time.perf_counter()
    hidden: list[int] = []
    if vault is not None:
        from memos_cli.vault import Vault
        from memos_cli.vault import search as vault_search

        v = Vault(vault)
        store = UsageStore(v.place.usage_dir()).warm()
        hits = vault_search(v, enc, query, k, user=user, hidden=hidden)
        took = time.perf_counter() - t0
        v.log(user, "search", memory_ids=[h.memory.id for h in hits], detail={"query": query})
    else:
        c = open_arg(cube)
        where = shown(c.path)
        store = cube_store(c.manifest.cube_id).warm()
        hits = retrieve(c, enc, query, k, user=user if as_user else None, hidden=hidden)
        took = time.perf_counter() - t0
        audit(user, "search", c.manifest.cube_id, [h.memory.id for h in hits], query)
    with recording(store, "search", uses_of(hits)):
        _show(query, where, vault is None, took, hits, as_json, sum(hidden), user)


MAX_QUERIES = 1_000_000


def read_queries(path: Path, k: int) -> list[tuple[Any, str, int]]:
    """``(id, query, k)`` of every line of a queries file, checked before any search runs.

    Raises:
        SourceError: unreadable, malformed JSON, or a line that is not an object with a
            string ``query`` and, when given, a positive integer ``k`` (naming the line).
    """
    from memos_cli.errors import SourceError
    from memos_cli.sources.base import parse_lines, read_lines

    items: list[tuple[Any, str, int]] = []
    for lineno, obj in parse_lines(read_lines(path), path):
        if not isinstance(obj, dict) or not isinstance(obj.get("query"), str):
            raise SourceError(f"line {lineno}: not an object with a \"query\" string",
                              path=path)
        kk = obj.get("k", k)
        if isinstance(kk, bool) or not isinstance(kk, int) or kk < 1:
            raise SourceError(f"line {lineno}: \"k\" is not a positive integer", path=path)
        if len(items) == MAX_QUERIES:
            raise SourceError(f"more than {MAX_QUERIES} queries", path=path)
        items.append((obj.get("id", lineno), obj["query"], kk))
    return items


def _batch(cube: str | None, vault: str | None, items: list[tuple[Any, str, int]],
           as_user: str | None, embedder: Path | None, as_json: bool) -> None:
    """Search each query of a queries file in this one process; JSON lines with --json."""
    from memos_cli.governance.policy import current_user

    user = as_user or current_user()
    enc = query_embedder(embedder)
    if vault is not None:
        from memos_cli.vault import Vault
        from memos_cli.vault import search as vault_search

        v = Vault(vault)
        store = UsageStore(v.place.usage_dir()).warm()

        def one(q: str, kk: int, hidden: list[int]) -> list[Any]:
            return vault_search(v, enc, q, kk, user=user, hidden=hidden)
        where = {"vault": str(vault)}
    else:
        c = open_arg(cube or "")
        store = cube_store(c.manifest.cube_id).warm()

        def one(q: str, kk: int, hidden: list[int]) -> list[Any]:
            return retrieve(c, enc, q, kk, user=user if as_user else None, hidden=hidden)
        where = {"cube": str(c.path)}
    import json

    for qid, q, kk in items:
        hidden: list[int] = []
        t0 = time.perf_counter()
        hits = one(q, kk, hidden)
        took = time.perf_counter() - t0
        with recording(store, "search", uses_of(hits)):
            if as_json:
                line = {"id": qid, "query": q, **where, "search_s": round(took, 4),
                        "hidden_by_access": sum(hidden), "results": [h.to_dict() for h in hits]}
                typer.echo(json.dumps(line, ensure_ascii=False))
            else:
                ids = " ".join(f"{h.rank}:{h.memory.id[:8]}" for h in hits)
                typer.echo(f"{qid}\t{took * 1000:.0f} ms\t{ids}")  # tab-separated: for cut/awk
    if vault is None:
        audit(user, "search", c.manifest.cube_id, [], f"{len(items)} queries from a file")


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
                  "packed with --visibility shared/public or --share-with)", markup=False)
    t = DataTable(title=f"{len(hits)} memories for {query!r} ({took * 1000:.0f} ms)",
              title_justify="left")
    for col in ("#", "score", "id", "source", "text"):
        t.add_column(col, overflow="fold")
    for h in hits:
        m = h.memory
        where = (m.source_file or "") + (f":{m.line_start}-{m.line_end}" if m.line_start
                                         else f"#{m.turn_id}" if m.turn_id else "")
        text = Text(m.render())
        if getattr(h, "via", "memory") != "memory":  # found through a reader's text
            text.append(f"\n  matched {h.via}" + (f": {h.matched}" if h.matched else ""),
                        style="dim")
        t.add_row(str(h.rank), f"{h.score:.4f}", m.id[:8], where, text)
    out.print(t)


def audit(user: str, op: str, cube_id: str, ids: list[str], text: str) -> None:
    """Record a read of a cube in the default vault's access log, when there is a vault."""
    from memos_cli.vault import Vault

    v = Vault(None)
    if v.exists():
        v.log(user, op, cube_id=cube_id, memory_ids=ids, detail={"query": text})


def query_embedder(path: Path | None) -> Any:
    """The query encoder: its ONNX export when there is one (no torch import; made by the
    first search), else the torch encoder (:mod:`memos_cli.models.onnx_embedder`)."""
    from memos_cli.cli.output import status
    from memos_cli.models.onnx_embedder import query_embedder as pick

    with status("loading embedder"):
        return pick(path)


def register(app: typer.Typer) -> None:
    app.command()(search)
