"""``memos eval``: compare the tiers of a cube on a question file."""

from __future__ import annotations

from pathlib import Path

import typer

from memos_cli.cli.choices import Device
from memos_cli.cli.cube import EMBEDDER_OPT, JSON_OPT, load_embedder
from memos_cli.cli.output import DataTable, out, print_json, progress_bar, status
from memos_cli.cube import open_verified
from memos_cli.errors import UsageError
from memos_cli.evaluation import forgetting
from memos_cli.evaluation.evaluate import check_tiers, default_tiers, evaluate, load_questions
from memos_cli.models import chat


def eval_(
    cube: Path = typer.Argument(..., help="The .memcube directory."),
    questions: Path = typer.Argument(..., metavar="QUESTIONS.jsonl",
                                     help='One {"question": ..., "answers": [...]} a line.'),
    tiers: str | None = typer.Option(None, help="Comma-separated, from none, text, kv, lora "
                                                "\\[default: none and every tier the cube "
                                                "holds]."),
    model: str | None = typer.Option(
        None, "--model", "-m", metavar="DIR|FILE.gguf|HUB_ID",
        help="The model to answer with \\[default: SmolLM2-135M-Instruct]."),
    k: int = typer.Option(5, "-k", "--top-k", min=1, max=100,
                          help="text, and kv with chunks: memories retrieved into the "
                               "prompt (1 to 100)."),
    device: Device = typer.Option("auto", help="auto, cpu, cuda or mps: where the model runs."),
    max_new_tokens: int = typer.Option(48, help="Most tokens per answer."),
    answers: bool = typer.Option(False, "--answers", help="With --json: every answer too."),
    general: Path | None = typer.Option(
        None, "--general", metavar="QUESTIONS.jsonl",
        help="lora: general questions answered with and without the adapter \\[default: the "
             "210 packaged ones]; the mean KL from the base model is measured too."),
    no_general: bool = typer.Option(False, "--no-general", help="lora: skip the general "
                                    "questions and the KL (they take minutes on a CPU)."),
    embedder: Path | None = EMBEDDER_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Answer every question with each tier and print accuracy, time to first token, decode
    speed and bytes on disk per tier. An answer is correct when it contains an accepted form
    (case, whitespace and punctuation ignored). Greedy decoding: the same model, cube and
    versions give the same accuracy.

    Example: [bold]memos eval team.memcube questions.jsonl --tiers none,text,kv,lora[/bold]
    """
    if k < 1 or max_new_tokens < 1:
        raise UsageError("-k and --max-new-tokens must be at least 1")
    c = open_verified(cube)
    wanted = [t.strip() for t in tiers.split(",") if t.strip()] if tiers else default_tiers(c)
    if not wanted:
        raise UsageError("--tiers names no tier")
    check_tiers(c, wanted)
    qs = load_questions(questions)
    gen_qs, kl_prompts = [], []
    if "lora" in wanted and not no_general:
        gen_qs = load_questions(general or forgetting.packaged("questions.jsonl"))
        kl_prompts = forgetting.load_prompts(forgetting.packaged("prompts.jsonl"))
    enc = load_embedder(embedder) if "text" in wanted or (
        "kv" in wanted and c.chunk_sets) else None
    with status("loading model") as say:
        lm = chat.load(model, status=say, device=device)
    with progress_bar() as update:
        rows = evaluate(c, lm, qs, wanted, embedder=enc, k=k, max_new_tokens=max_new_tokens,
                        general=gen_qs, kl_prompts=kl_prompts, progress=update)
    if as_json:
        print_json([r.to_dict(answers=answers) for r in rows])
        return

    kinds = sorted({kind for r in rows for kind in r.by_kind})
    table = DataTable(title=f"{c.manifest.name}: {len(qs)} questions, model {lm.name}")
    for col in ["tier", "accuracy", *kinds, "TTFT (s)", "tokens/s", "prompt tokens", "bytes"]:
        table.add_column(col, justify="left" if col == "tier" else "right")
    for r in rows:
        table.add_row(r.tier, f"{r.accuracy:.1%} ({r.correct}/{r.questions})",
                      *[f"{r.by_kind[kd]['accuracy']:.1%}" if kd in r.by_kind else "-"
                        for kd in kinds],
                      f"{r.ttft_s:.3f}", f"{r.tokens_per_s:.1f}", f"{r.prompt_tokens:.0f}",
                      f"{r.bytes:,}")
    out.print(table)
    for r in rows:
        g = r.general
        if g is not None:
            kept = f"{g['kept']:.1%} kept" if g["kept"] is not None else "base answers none"
            out.print(f"{r.tier}: general questions {g['correct']}/{g['questions']} with the "
                      f"adapter, {g['base_correct']}/{g['questions']} without ({kept}); mean "
                      f"KL from the base model {g['kl']} nats/token over {g['kl_prompts']} "
                      "prompts", markup=False)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_)
