"""``memos convert``: move memories between tiers."""

from __future__ import annotations

from pathlib import Path

import typer

from memos_cli import config
from memos_cli.api.converting import Converted, ConvertOptions, prepare_conversion
from memos_cli.cli.choices import Device, Dtype
from memos_cli.cli.cube import EMBEDDER_OPT, JSON_OPT, load_embedder
from memos_cli.cli.cube_args import changed_cube
from memos_cli.cli.output import err, out, print_json, progress_bar, status, warn_unsigned
from memos_cli.models import chat
from memos_cli.units import parse_size


def convert(
    cube: str = typer.Argument(..., help="The .memcube directory, or a cube in a bucket "
                               "(s3://, gs://, az://, file://), replaced there when done."),
    to: str = typer.Option(..., "--to", help="The tier to build: kv (activation tier), lora "
                                             "(parameter tier), or text (restore the "
                                             "plaintext tier of a KV-only or LoRA-only "
                                             "cube)."),
    model: str | None = typer.Option(
        None, "--model", "-m", metavar="DIR|FILE.gguf|HUB_ID",
        help="The model the KV cache is for \\[default: SmolLM2-135M-Instruct]."),
    dtype: Dtype | None = typer.Option(
        None, help="Storage dtype: float32, bfloat16, float16, int8 (KIVI-style, with "
                   "scales) \\[default: --chunks float16 for a float32 model (answers measured "
                   "equal, half the bytes), else the model's own dtype; a segment float32]."),
    ids: str | None = typer.Option(None, help="Comma-separated memory ids, in prefix order."),
    query: str | None = typer.Option(None, help="Use the top memories for this query."),
    top: int | None = typer.Option(None, help="How many memories (with --query, or the "
                                              "first N by priority)."),
    drop_text: bool = typer.Option(False, "--drop-text", help="With --to kv or lora: then "
                                                              "remove the plaintext tier."),
    chunks: bool = typer.Option(False, "--chunks", help="--to kv: one KV chunk per memory (or "
                                                        "group) that `run --tier kv` composes "
                                                        "after retrieval, instead of one "
                                                        "whole-prefix segment."),
    group: str = typer.Option("memory", help="--chunks: memory, session (a conversation "
                                             "session) or section (a document section) per "
                                             "chunk."),
    max_bytes: str | None = typer.Option(None, "--max-bytes", metavar="SIZE",
                                         help="--chunks: most bytes for the chunk set, e.g. "
                                              "200MB (chunks in priority order until full) "
                                              "\\[default: no limit]."),
    device: Device = typer.Option("auto", help="auto, cpu, cuda or mps: where the model runs."),
    recipe: str = typer.Option("guarded", help="--to lora: training recipe: mixed (sampled "
                                             "and templated questions), selfqa, anchors, "
                                             "text (next-token on the memory text), "
                                             "distill (the text tier as teacher, KL loss), "
                                             "mixed-kl, or guarded (mixed, held to the base "
                                             "model on 380 general prompts)."),
    epochs: int | None = typer.Option(None, help="--to lora: passes over the training "
                                                 "examples \\[default: the recipe's: 2 for "
                                                 "guarded, 3 for the others]."),
    rank: int = typer.Option(16, help="--to lora: LoRA rank (alpha is twice the rank)."),
    lr: float | None = typer.Option(None, help="--to lora: learning rate \\[default: the "
                                              "recipe's: 0.0015 for guarded, 0.001 for the "
                                              "others]."),
    seed: int = typer.Option(0, help="--to lora: random seed (same seed and versions, same "
                                     "adapter)."),
    replay: int = typer.Option(32, help="--to lora: general prompts answered by the base "
                                        "model and trained on as they are, against forgetting "
                                        "(0 to 32; guarded: 0 turns its 380 off)."),
    budget: int = typer.Option(64, help="--to lora: most memories to train on."),
    eval_file: Path | None = typer.Option(
        None, "--eval", metavar="QUESTIONS.jsonl",
        help="--to lora: score the new adapter on these questions and store the result."),
    key: Path | None = typer.Option(None, "--key", help="Re-sign with this private key; "
                                                        "without it the cube becomes unsigned."),
    embedder: Path | None = EMBEDDER_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Precompute a tier from the cube's memories and write it into the cube (atomic).

    --to kv --chunks stores one KV cache per memory (or per session or section with --group),
    computed after the shared system prompt, that `memos run --tier kv` composes for the
    memories a question retrieves. --to kv alone stores the KV cache of one memory prefix (all
    memories by priority, --ids, or the --top N for a --query) as a safetensors segment.
    --to text rebuilds memories.arrow and the index of a KV-only cube from its token ids.
    Example: [bold]memos convert team.memcube --to kv --dtype bfloat16 --key team.key[/bold]
    """
    options = dict(locals())  # the parameters, passed on as they are
    with changed_cube(cube) as local:
        _convert(**{**options, "cube": local})


def _convert(cube: Path, to: str, model: str | None, dtype: str | None, ids: str | None,
             query: str | None, top: int | None, drop_text: bool, chunks: bool, group: str,
             max_bytes: str | None, device: str, recipe: str, epochs: int | None, rank: int,
             lr: float | None,
             seed: int, replay: int, budget: int, eval_file: Path | None, key: Path | None,
             embedder: Path | None, as_json: bool) -> None:
    key = config.signing_key(key)
    options = ConvertOptions(
        to=to, ids=tuple(i for i in (ids or "").split(",") if i), query=query, top=top,
        drop_text=drop_text, chunks=chunks, group=group,
        max_bytes=parse_size(max_bytes) if max_bytes is not None else None, dtype=dtype,
        recipe=recipe, epochs=epochs, rank=rank, lr=lr, seed=seed, replay=replay,
        budget=budget, eval_file=eval_file).checked()
    encoder = load_embedder(embedder) if to == "text" or query else None
    job = prepare_conversion(cube, options, embedder=encoder)
    lm = None
    if job.needs_model:
        with status("loading model") as say:
            lm = chat.load(model, status=say, device=device)
    if job.kind in ("chunks", "lora"):
        with progress_bar() as update:
            result = job.run(lm, embedder=encoder, key=key, progress=update)
    else:
        stage = ("restoring memories" if job.kind == "text"
                 else f"prefilling {len(job.memories)} memories")
        with status(stage):
            result = job.run(lm, embedder=encoder, key=key)
    if result.dropped_signature:
        warn_unsigned(cube)
    if as_json:
        print_json(result.to_dict())
        return
    out.print(_line(result))
    if result.kind == "chunks" and result.report.skipped_for_budget:
        err.print(f"{result.report.skipped_for_budget} chunks left out: over --max-bytes")


def _line(result: Converted) -> str:
    """The one line ``memos convert`` prints of what it built."""
    r = result.report
    if result.kind == "text":
        return (f"restored {r['memories']} memories of {r['path']} from {r['from']}; "
                + ("signed" if r["signed"] else "unsigned"))
    if result.kind == "chunks":
        return (f"wrote KV chunk set {r.chunk_set} ({r.group}): {r.chunks} chunks "
                f"({r.reused} reused) of {r.memories} memories, {r.tokens:,} tokens, "
                f"{r.storage_dtype}, {r.bytes:,} bytes, built in {r.build_s:.1f} s")
    if result.kind == "lora":
        line = (f"wrote LoRA adapter ({r['recipe']}): {r['memories']} memories, "
                f"{r['examples']} examples, {r['steps']} steps in "
                f"{r['train_s']:.0f} s, {r['bytes']:,} bytes")
        if r["eval"]:
            line += f"; build-time accuracy {r['eval']['accuracy']:.1%}"
        return line
    return (f"wrote KV segment {r.segment_id}: {r.memories} memories, "
            f"{r.tokens} tokens, {r.storage_dtype}, {r.bytes:,} bytes "
            f"({r.bytes / r.tokens:,.0f} bytes/token), built in {r.build_s:.2f} s")


def register(app: typer.Typer) -> None:
    app.command()(convert)
