"""``memos schedule``: MemScheduler over a vault or cubes (promote, evict, distil, archive)."""

from __future__ import annotations

from pathlib import Path

import typer

from memos_cli.api import Session
from memos_cli.cli.choices import Device, Dtype, Policy
from memos_cli.cli.cube import JSON_OPT
from memos_cli.cli.output import err, out, print_json, progress_bar
from memos_cli.errors import UsageError
from memos_cli.units import parse_size


def parse_budget(text: str) -> tuple[int | None, float | None]:
    """``--kv-budget``: a size (``200MB``) or a share of every memory's chunk (``25%``).
    Raises ``UsageError`` for zero, negative or unparsable values."""
    t = text.strip()
    if t.endswith("%"):
        try:
            pct = float(t[:-1])
        except ValueError:
            pct = -1.0
        if not 0 < pct <= 100:
            raise UsageError(f"--kv-budget {text!r} is not a share above 0% and up to 100%")
        return None, pct / 100
    return parse_size(t, "--kv-budget"), None


def schedule(
    cubes: list[Path] = typer.Argument(None, metavar="[CUBE...]",
                                       help="Cubes used outside a vault (or --vault)."),
    vault: str | None = typer.Option(None, "--vault", metavar="DIR|URI",
                                      help="Schedule the memories installed in this vault."),
    model: str | None = typer.Option(
        None, "--model", "-m", metavar="DIR|FILE.gguf|HUB_ID",
        help="The model the chunks are for \\[default: SmolLM2-135M-Instruct]."),
    kv_budget: str = typer.Option(..., "--kv-budget", metavar="SIZE|N%",
                                  help="Bytes the activation tier may hold in the chunk "
                                       "store (200MB, 1.5GiB), or a share of the bytes of "
                                       "every memory's chunk (25%)."),
    policy: Policy = typer.Option("decay", help="decay (decayed use frequency), lfu (use count), "
                                             "lru (last use) or memos (MemOS's rank-based "
                                             "score, for comparison)."),
    half_life: float | None = typer.Option(None, help="Half-life of the decay score, in days "
                                                      "\\[default: 7]."),
    dtype: Dtype = typer.Option("float16", help="Storage dtype of new chunks: float32, "
                                              "bfloat16, float16 or int8."),
    lora_min_uses: int = typer.Option(5, help="Parameter-tier candidates: used at least this "
                                              "often..."),
    lora_window_days: float = typer.Option(7.0, help="...over at least this many days."),
    cold_days: float = typer.Option(30.0, help="Cold: unused for this many days."),
    device: Device = typer.Option("auto", help="auto, cpu, cuda or mps: where chunks are "
                                            "computed."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    as_json: bool = JSON_OPT,
) -> None:
    """Move memories between tiers by use (MemScheduler).

    Ranks the memories of a vault or of cubes by their recorded use (`memos search` and `memos
    run` record it), stores KV chunks for the hottest ones that fit the budget (`run` uses
    them), evicts chunks that fell out, and lists parameter-tier candidates (`memos convert
    CUBE --to lora --ids ...`) and cold memories (`memos vault gc --cold`). Each decision is
    one line with its reason.
    Example: [bold]memos schedule --vault ~/vault --kv-budget 25%[/bold]
    """
    if (vault is None) == (not cubes):
        raise UsageError("give CUBE... or --vault DIR (one of them)")
    size, share = parse_budget(kv_budget)
    session = Session(cubes or [], vault=vault, model=model, device=device)
    with progress_bar() as update:
        result = session.schedule(
            size=size, share=share, policy=policy, half_life=half_life, dtype=dtype,
            lora_min_uses=lora_min_uses, lora_window_days=lora_window_days,
            cold_days=cold_days, dry_run=dry_run,
            progress=lambda d, t: update("computing KV chunks", d, t))
    if as_json:
        print_json(result.to_dict())
        return
    p = result.plan
    if p is None:
        out.print(result.reason, markup=False)
        return
    for line in (d.line() for d in p.decisions):
        out.print(line, markup=False)
    for o in result.others:
        err.print(f"note: chunks of another model ({o.model}, set {o.id}) are left as they are",
                  markup=False)
    lora = [d.memory_id or "" for d in p.of("lora")]
    if lora:
        out.print(f"parameter tier: memos convert CUBE --to lora --ids {','.join(lora)}",
                  markup=False)
    if p.of("cold") and vault is not None:
        out.print(f"{len(p.of('cold'))} cold memories: memos vault gc --cold --vault {vault}",
                  markup=False)
    verb = "planned (dry run)" if not p.applied else "applied"
    out.print(f"{verb}: {len(p.hot_keys())} chunks hot in {result.budget / 1e6:.1f} MB budget "
              f"({p.policy}); {p.computed} computed, {p.reused} copied from cubes, "
              f"{len(p.of('evict'))} evicted; store {p.stored_before / 1e6:.1f} -> "
              f"{(p.stored_after if p.applied else p.stored_before) / 1e6:.1f} MB "
              f"in {p.apply_s:.1f} s", markup=False)


def register(app: typer.Typer) -> None:
    app.command("schedule")(schedule)
