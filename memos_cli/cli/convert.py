"""``memos convert``: move memories between tiers."""

from __future__ import annotations

from pathlib import Path

import typer

from memos_cli.cli.cube import EMBEDDER_OPT, JSON_OPT, load_embedder
from memos_cli.cli.output import err, out, print_json, status
from memos_cli.cube import open_cube
from memos_cli.errors import UsageError
from memos_cli.models import chat


def convert(
    cube: Path = typer.Argument(..., help="The .memcube directory."),
    to: str = typer.Option(..., "--to", help="The tier to build: kv (activation tier) or "
                                             "text (restore the plaintext tier of a KV-only "
                                             "cube from its token ids)."),
    model: str | None = typer.Option(
        None, "--model", "-m", metavar="DIR|FILE.gguf|HUB_ID",
        help="The model the KV cache is for [default: SmolLM2-135M-Instruct]."),
    dtype: str = typer.Option("float32", help="Storage dtype: float32, bfloat16, float16, "
                                              "int8 (KIVI-style, with scales)."),
    ids: str | None = typer.Option(None, help="Comma-separated memory ids, in prefix order."),
    query: str | None = typer.Option(None, help="Use the top memories for this query."),
    top: int | None = typer.Option(None, help="How many memories (with --query, or the "
                                              "first N by priority)."),
    drop_text: bool = typer.Option(False, "--drop-text", help="With --to kv: then remove the "
                                                              "plaintext tier (KV-only cube)."),
    key: Path | None = typer.Option(None, "--key", help="Re-sign with this private key; "
                                                        "without it the cube becomes unsigned."),
    embedder: Path | None = EMBEDDER_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Precompute a tier from the cube's memories and write it into the cube (atomic).

    --to kv stores the KV cache of the memory prefix (all memories by priority, --ids, or the
    --top N for a --query) as a safetensors segment that `memos run --tier kv` uses.
    --to text rebuilds memories.arrow and the index of a KV-only cube from its token ids.
    Example: [bold]memos convert team.memcube --to kv --dtype bfloat16 --key team.key[/bold]
    """
    from memos_cli.convert import convert_to_kv, restore_text, select_memories  # imports torch

    if to not in ("kv", "text"):
        raise UsageError(f"--to {to!r}: this memos converts to kv (activation tier) or text")
    if to == "text":
        encoder = load_embedder(embedder)
        with status("loading model") as say:
            lm = chat.load(model, status=say)
        with status("restoring memories"):
            data = restore_text(cube, lm, encoder, key=key)
        if as_json:
            print_json(data)
        else:
            out.print(f"restored {data['memories']} memories of {data['path']} from KV "
                      f"token ids; " + ("signed" if data["signed"] else "unsigned"))
        return
    if top is not None and top < 1:
        raise UsageError("--top must be at least 1")
    c = open_cube(cube)
    enc = load_embedder(embedder) if query else None
    mems = select_memories(c, ids=[i for i in (ids or "").split(",") if i], query=query,
                           top=top, embedder=enc)
    with status("loading model") as say:
        lm = chat.load(model, status=say)
    was_signed = c.signed
    with status(f"prefilling {len(mems)} memories"):
        report = convert_to_kv(cube, lm, mems, storage_dtype=dtype, key=key,
                               drop_text=drop_text)
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"wrote KV segment {report.segment_id}: {report.memories} memories, "
              f"{report.tokens} tokens, {report.storage_dtype}, {report.bytes:,} bytes "
              f"({report.bytes / report.tokens:,.0f} bytes/token), built in "
              f"{report.build_s:.2f} s")
    if was_signed and not report.signed:
        err.print("[yellow]the cube is now unsigned[/yellow]: re-sign with --key PRIVATE_KEY")


def register(app: typer.Typer) -> None:
    app.command()(convert)
