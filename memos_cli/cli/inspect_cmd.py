"""``memos inspect``: what a cube holds, its provenance, tiers, signature state and first
memories."""

from __future__ import annotations

from typing import Any

import typer
from rich.text import Text

from memos_cli.cli.cube import JSON_OPT, REMOTE_CUBE_HELP
from memos_cli.cli.cube_args import open_arg
from memos_cli.cli.output import DataTable, check_as, out, print_json
from memos_cli.cli.usage_view import show_memories
from memos_cli.cube.lora import read_meta
from memos_cli.cube.memories import content_digest
from memos_cli.governance.policy import can_read
from memos_cli.memstore.pull import origin_of
from memos_cli.scheduler.usage import cube_store


def inspect(
    cube: str = typer.Argument(..., help=REMOTE_CUBE_HELP),
    memories: int = typer.Option(5, "--memories", "-n", help="How many memories to list."),
    as_user: str | None = typer.Option(None, "--as", metavar="USER[/PERSONA]", callback=check_as,
                                       help="List only memories this user may read."),
    usage: bool = typer.Option(False, "--usage", help="Show the memories' recorded use "
                                                      "(retrievals, uses, first and last use, "
                                                      "decay score; MEMOS_HOME/usage)."),
    wide: bool = typer.Option(False, "--wide", help="Show paths and digests whole (the "
                              "default when output is not a terminal)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Show a cube's manifest, provenance, tiers, signature state and first memories.

    Example: [bold]memos inspect team.memcube --json[/bold]
    """
    c = open_arg(cube)
    m = c.manifest
    pool = c.memories if c.has_plaintext else []
    if as_user is not None:
        pool = [mem for mem in pool if can_read(mem, as_user)]
    listed = pool[:max(memories, 0)]
    # "content" is the memory's text and "text" its rendered form (what search returns and
    # indexes), the same two keys as in search --json
    first = [{**mem.to_dict(), "text": mem.render()} for mem in listed]
    digest = m.content_digest
    if digest is None and c.has_plaintext:  # older formats: computed the same way (spec §5)

        digest = content_digest(c.memories)

    pulled = origin_of(c.path)
    used: dict[str, Any] = {}
    if usage:
        store = cube_store(m.cube_id)
        used = {i: u for i, u in store.indicators().items()
                if i in {mem.id for mem in pool}}
    if as_json:
        print_json({"path": str(c.path), "manifest": m.raw, "content_digest": digest,
                    "signed": c.signed,
                    "files": len(c.files), "bytes": c.size_bytes(), "memories": first,
                    "pulled_from": pulled,
                    **({"usage": [u.to_dict() for u in used.values()]} if usage else {})})
        return
    whole = wide or not out.is_terminal
    if whole:
        out.width = 100_000  # tables render their cells whole instead of folding at 80 columns

    def cut(digest: str, n: int) -> str:
        return digest if whole else digest[:n] + "..."

    # superseded or ended (§4.6), of all the cube's memories as the count above is
    past = sum(1 for mem in c.memories if mem.valid_to is not None) if c.has_plaintext else 0
    t = DataTable(show_header=False, box=None)
    for k, v in [
        ("cube", f"{m.name}  ({m.cube_id})"),
        ("description", m.description or "-"),
        ("format", m.format_version),
        ("created", f"{m.created_at} by {m.producer['tool']} {m.producer['version']}"),
        ("tiers", ", ".join(m.tiers)),
        ("memories", str(m.counts["memories"]) + (
            f" ({m.counts['memories'] - past} current, {past} past: memos search --history)"
            if past else "")),
        ("content", cut(digest, 23) if digest else "- (no plaintext tier)"),
        ("embedder", f"{m.embedding['model']} ({m.embedding['dimension']}-d, "
                     f"{cut(m.embedding['fingerprint'], 23)})" if m.embedding else
                     "- (no plaintext tier: restore it with memos convert --to text)"),
        ("readers", "; ".join(
            f"{r['name']}" + (f" ({r['model']['name']})" if r["model"] else "")
            + f": {r['index_rows']} rows, {r['derived_memories']} derived"
            for r in m.readers) if m.readers else "-"),
        ("signature", "signed (check with memos verify --key)" if c.signed else "unsigned"),
        ("size", f"{c.size_bytes():,} bytes in {len(c.files)} files"),
        *([("pulled", (f"from {pulled.get('ref')}" if pulled["here"] else
                       f"the same files as {pulled.get('ref')}, pulled to {pulled.get('path')}")
            + f" at {pulled.get('pulled_at')} (signer: {pulled.get('signer')}; recorded on "
              "this machine)")] if pulled else []),
    ]:
        t.add_row(Text(k, style="bold"), v)
    out.print(t)
    src = DataTable(title="provenance: sources", title_justify="left")
    for col in ("path", "format", "memories", "bytes", "sha256"):
        src.add_column(col)
    for s in m.provenance["sources"]:
        src.add_row(s["path"], s["format"], str(s["memories"]), str(s["size"]),
                    cut(s["sha256"], 19))
    out.print(src)
    if c.segments:
        kt = DataTable(title="activation tier: KV segments", title_justify="left")
        for col in ("id", "model", "fingerprint", "memories", "tokens", "dtype", "bytes",
                    "bytes/token"):
            kt.add_column(col)
        for s in c.segments:
            kt.add_row(s["id"], s["model"], cut(s["model_fingerprint_sha256"], 19),
                       str(len(s["memory_ids"])), str(s["tokens"]), s["storage_dtype"],
                       f"{s['size']:,}", f"{s['size'] / s['tokens']:,.0f}")
        out.print(kt)
    if c.chunk_sets:
        ct = DataTable(title="activation tier: KV chunk sets", title_justify="left")
        for col in ("id", "model", "fingerprint", "group", "chunks", "memories", "tokens",
                    "dtype", "bytes"):
            ct.add_column(col)
        for cs in c.chunk_sets:
            tokens = int(cs.prefix["tokens"]) + sum(ch.tokens for ch in cs.chunks)
            ct.add_row(cs.id, cs.model, cut(cs.model_fingerprint_sha256, 19), cs.group,
                       str(len(cs.chunks)), str(sum(len(ch.memory_ids) for ch in cs.chunks)),
                       f"{tokens:,}", cs.storage_dtype, f"{cs.bytes:,}")
        out.print(ct)
    if c.has_lora:
        info = read_meta(c.lora_dir)
        lt = DataTable(title="parameter tier: LoRA adapter", title_justify="left")
        for col in ("model", "fingerprint", "recipe", "rank", "memories", "steps", "train s",
                    "build-time accuracy", "bytes"):
            lt.add_column(col)
        lm = m.lora or {}
        acc = info["eval"]["accuracy"] if info.get("eval") else None
        lt.add_row(lm["model"], cut(lm["model_fingerprint_sha256"], 19), lm["recipe"],
                   str(info["recipe"].get("rank")), str(len(lm["memory_ids"])),
                   str(info["training"].get("steps")), str(info["training"].get("train_s")),
                   "-" if acc is None else f"{acc:.1%}",
                   f"{sum(f['size'] for f in lm['files']):,}")
        out.print(lt)
    if usage:
        show_memories(used, pool, where=str(store.path), limit=max(memories, 20))
    if first:
        mt = DataTable(title=f"first {len(first)} memories", title_justify="left")
        for col in ("id", "type", "source", "text"):
            mt.add_column(col, overflow="fold")
        for mem in listed:
            where = mem.source_file or ""
            if mem.line_start:
                where += f":{mem.line_start}-{mem.line_end}"
            elif mem.turn_id:
                where += f"#{mem.turn_id}"
            text = mem.render()
            mt.add_row(mem.id[:8], mem.semantic_type, where,
                       text[:160] + ("..." if len(text) > 160 else ""))
        out.print(mt)


def register(app: typer.Typer) -> None:
    app.command()(inspect)
