"""``memos convert``: move memories between tiers."""

from __future__ import annotations

from pathlib import Path

import typer

from memos_cli import config
from memos_cli.cli.choices import Device, Dtype
from memos_cli.cli.cube import EMBEDDER_OPT, JSON_OPT, load_embedder
from memos_cli.cli.cube_args import changed_cube
from memos_cli.cli.output import err, out, print_json, progress_bar, status, warn_unsigned
from memos_cli.cube import open_cube, open_verified
from memos_cli.errors import UsageError
from memos_cli.evaluation.evaluate import bare_ask, load_questions, run_tier
from memos_cli.models import chat
from memos_cli.tiers.lora import RECIPES, REPLAY_PROMPTS, Recipe
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
    from memos_cli.tiers.convert import (  # imports torch
        convert_to_kv,
        restore_text,
        select_memories,
    )

    if to not in ("kv", "text", "lora"):
        raise UsageError(f"--to {to!r}: this memos converts to kv (activation tier), lora "
                         "(parameter tier) or text")
    if to == "text":
        encoder = load_embedder(embedder)
        lm = None
        was_signed = open_cube(cube).signed
        if not open_cube(cube).has_lora:
            with status("loading model") as say:
                lm = chat.load(model, status=say, device=device)
        with status("restoring memories"):
            data = restore_text(cube, lm, encoder, key=key)
        if was_signed and not data["signed"]:
            warn_unsigned(cube)
        if as_json:
            print_json(data)
        else:
            out.print(f"restored {data['memories']} memories of {data['path']} from "
                      f"{data['from']}; " + ("signed" if data["signed"] else "unsigned"))
        return
    if top is not None and top < 1:
        raise UsageError("--top must be at least 1")
    c = open_verified(cube)
    enc = load_embedder(embedder) if query else None
    mems = select_memories(c, ids=[i for i in (ids or "").split(",") if i], query=query,
                           top=top, embedder=enc)
    if chunks and (to != "kv" or drop_text):
        raise UsageError("--chunks goes with --to kv, without --drop-text (chunks follow "
                         "retrieval, which needs the plaintext tier)")
    kv_budget = parse_size(max_bytes) if max_bytes is not None else None
    with status("loading model") as say:
        lm = chat.load(model, status=say, device=device)
    was_signed = c.signed
    if dtype is None:
        from memos_cli.tiers.convert_chunks import default_dtype

        dtype = default_dtype(lm) if chunks else "float32"
    if chunks:
        _to_chunks(cube, lm, mems, group=group, dtype=dtype, budget=kv_budget, key=key,
                   as_json=as_json)
        if was_signed and key is None:
            warn_unsigned(cube)
        return
    if to == "lora":
        _to_lora(cube, lm, mems, key=key, drop_text=drop_text, as_json=as_json,
                 options={"recipe": recipe, "epochs": epochs, "rank": rank, "lr": lr,
                          "seed": seed, "budget": budget, "eval": eval_file,
                          "replay": replay})
        if was_signed and key is None:
            warn_unsigned(cube)
        return
    with status(f"prefilling {len(mems)} memories"):
        report = convert_to_kv(cube, lm, mems, storage_dtype=dtype, key=key,
                               drop_text=drop_text)
    if was_signed and not report.signed:
        warn_unsigned(cube)
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"wrote KV segment {report.segment_id}: {report.memories} memories, "
              f"{report.tokens} tokens, {report.storage_dtype}, {report.bytes:,} bytes "
              f"({report.bytes / report.tokens:,.0f} bytes/token), built in "
              f"{report.build_s:.2f} s")


def _to_chunks(cube: Path, lm: chat.ChatModel, mems: list, *, group: str, dtype: str,
               budget: int | None, key: Path | None, as_json: bool) -> None:
    from memos_cli.tiers.convert_chunks import convert_to_chunks

    with progress_bar() as update:
        report = convert_to_chunks(cube, lm, mems, group=group, storage_dtype=dtype,
                                   max_bytes=budget, key=key,
                                   progress=lambda d, t: update("prefilling KV chunks", d, t))
    if as_json:
        print_json(report.to_dict())
        return
    line = (f"wrote KV chunk set {report.chunk_set} ({report.group}): {report.chunks} chunks "
            f"({report.reused} reused) of {report.memories} memories, {report.tokens:,} tokens, "
            f"{report.storage_dtype}, {report.bytes:,} bytes, built in {report.build_s:.1f} s")
    out.print(line)
    if report.skipped_for_budget:
        err.print(f"{report.skipped_for_budget} chunks left out: over --max-bytes")


def _to_lora(cube: Path, lm: chat.ChatModel, mems: list, *, key: Path | None,
             drop_text: bool, as_json: bool, options: dict) -> None:
    from memos_cli.tiers.convert import convert_to_lora

    if options["recipe"] not in RECIPES:
        raise UsageError(f"--recipe {options['recipe']!r} is not one of {', '.join(RECIPES)}")
    epochs = options["epochs"]
    lr = options["lr"]
    if (epochs is not None and epochs < 1) or options["rank"] < 1 or \
            (lr is not None and lr <= 0) or \
            options["budget"] < 1 or not 0 <= options["replay"] <= len(REPLAY_PROMPTS):
        raise UsageError("--epochs, --rank and --budget must be at least 1, --lr above 0, "
                         f"--replay 0 to {len(REPLAY_PROMPTS)}")
    recipe = Recipe.named(options["recipe"], epochs=options["epochs"], rank=options["rank"],
                          alpha=2 * options["rank"], lr=options["lr"], seed=options["seed"],
                          replay=options["replay"])
    evaluate = None
    if options["eval"] is not None:
        questions = load_questions(options["eval"])

        def evaluate(tuned: chat.ChatModel) -> dict:
            with progress_bar() as update:
                row = run_tier("lora", bare_ask(tuned, "lora"), questions, 0, update)
            d = row.to_dict()
            d.pop("bytes")
            return {"questions_file": options["eval"].name, **d}
    with progress_bar() as update:
        report = convert_to_lora(
            cube, lm, mems, recipe, key=key, drop_text=drop_text, budget=options["budget"],
            evaluate=evaluate,
            progress=lambda step, total, loss: update("training the LoRA adapter", step, total))
    if as_json:
        print_json(report)
        return
    line = (f"wrote LoRA adapter ({report['recipe']}): {report['memories']} memories, "
            f"{report['examples']} examples, {report['steps']} steps in "
            f"{report['train_s']:.0f} s, {report['bytes']:,} bytes")
    if report["eval"]:
        line += f"; build-time accuracy {report['eval']['accuracy']:.1%}"
    out.print(line)


def register(app: typer.Typer) -> None:
    app.command()(convert)
