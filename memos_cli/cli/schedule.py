"""``memos schedule``: MemScheduler over a vault or cubes (promote, evict, distil, archive)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import typer

from memos_cli.cli.cube import JSON_OPT, parse_size
from memos_cli.cli.output import err, out, print_json, progress_bar, status
from memos_cli.errors import UsageError


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


def _scope(vault: str | None, cubes: list[Any]) -> str:
    if vault is not None:
        where = vault if "://" in vault else str(Path(vault).resolve())
        return "vault-" + hashlib.sha256(where.encode()).hexdigest()[:16]
    ids = sorted(c.manifest.cube_id for c in cubes)
    if len(ids) == 1:
        return f"cube-{ids[0]}"
    return "cubes-" + hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]


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
    policy: str = typer.Option("decay", help="decay (decayed use frequency), lfu (use count), "
                                             "lru (last use) or memos (MemOS's rank-based "
                                             "score, for comparison)."),
    half_life: float | None = typer.Option(None, help="Half-life of the decay score, in days "
                                                      "\\[default: 7]."),
    dtype: str = typer.Option("float16", help="Storage dtype of new chunks: float32, "
                                              "bfloat16, float16 or int8."),
    lora_min_uses: int = typer.Option(5, help="Parameter-tier candidates: used at least this "
                                              "often..."),
    lora_window_days: float = typer.Option(7.0, help="...over at least this many days."),
    cold_days: float = typer.Option(30.0, help="Cold: unused for this many days."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or mps: where chunks are "
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
    from datetime import timedelta

    from memos_cli import scheduler
    from memos_cli.cube.kv import STORAGE_DTYPES
    from memos_cli.store.usage import UsageStore, cube_store

    if (vault is None) == (not cubes):
        raise UsageError("give CUBE... or --vault DIR (one of them)")
    size, share = parse_budget(kv_budget)
    if policy not in scheduler.POLICIES:
        raise UsageError(f"--policy {policy!r} is not one of {', '.join(scheduler.POLICIES)}")
    if dtype not in STORAGE_DTYPES:
        raise UsageError(f"--dtype {dtype!r} is not one of {', '.join(STORAGE_DTYPES)}")
    if lora_min_uses < 1 or lora_window_days < 0 or cold_days <= 0:
        raise UsageError("--lora-min-uses must be >= 1, --lora-window-days >= 0, "
                         "--cold-days > 0")
    hl = scheduler.half_life_of(half_life)
    opened: list[Any] = []
    if vault is not None:
        from memos_cli.vault import Vault

        v = Vault(vault)
        memories = v.state(vectors=False).memories
        stores = [UsageStore(v.place.usage_dir())]
        usage = stores[0].indicators(half_life=hl)
        where = f"vault {v.path}"
    else:
        from memos_cli.cube import open_verified

        opened = [open_verified(c) for c in cubes]
        memories, usage = [], {}
        stores = [cube_store(c.manifest.cube_id) for c in opened]
        for c, st in zip(opened, stores, strict=True):
            c.require_plaintext()
            memories += c.memories
            usage.update(st.indicators(half_life=hl))
        where = ", ".join(str(c.path) for c in opened)
    usage = {i: u for i, u in usage.items() if i in {m.id for m in memories}}
    if not usage:
        msg = f"no usage recorded yet for {where}: nothing to schedule (search or run first)"
        if as_json:
            print_json({"scope": where, "applied": False, "reason": msg})
        else:
            out.print(msg, markup=False)
        return
    from memos_cli.models import chat
    from memos_cli.models.fingerprint import fingerprint_digest
    from memos_cli.store.chunks import ChunkStore
    from memos_cli.tiers import prompt

    with status("loading model") as say:
        lm = chat.load(model, status=say, device=device)
    fp = lm.fingerprint()
    chunk_bytes, prefix_bytes = scheduler.estimator(lm, memories, dtype)
    budget = size if size is not None else int(
        (share or 0.0) * (prefix_bytes + sum(chunk_bytes(m) for m in memories)))
    store = ChunkStore()
    digest = fingerprint_digest(fp)
    sid = store.set_for(digest, prompt.LAYOUT, dtype)
    scope = _scope(vault, opened)
    others = [s for s in store.sets()
              if s.model_fingerprint_sha256 not in lm.fingerprint_digests()]
    s = store.open_set(sid)
    stored = scheduler.stored_for(s, scope) if s is not None else {}
    if s is not None and s.prefix.is_file():
        prefix_bytes = s.prefix.stat().st_size
    p = scheduler.plan(memories, usage, policy=policy, budget=budget, chunk_bytes=chunk_bytes,
                       stored=stored, key_of=lambda m: m.content_hash.removeprefix("sha256:"),
                       prefix_bytes=prefix_bytes, lora_min_uses=lora_min_uses,
                       lora_window=timedelta(days=lora_window_days),
                       cold_after=timedelta(days=cold_days))
    if not dry_run:
        for st in stores:  # fold the many small appends into few files (Lance optimize)
            if st.exists():
                st.compact()
    if not dry_run and (p.of("promote") or p.of("evict") or s is None):
        with store.lock():
            s = store.create_set(lm.name, digest, prompt.LAYOUT, dtype)
            with progress_bar() as update:
                scheduler.apply(p, lm, s, memories, scope=scope, cubes=opened,
                                progress=lambda d, t: update("computing KV chunks", d, t))
    elif not dry_run:
        p.applied, p.stored_after = True, p.stored_before
    if as_json:
        print_json({"scope": where, "store_set": sid, "model": lm.name, **p.to_dict()})
        return
    for line in (d.line() for d in p.decisions):
        out.print(line, markup=False)
    for o in others:
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
    out.print(f"{verb}: {len(p.hot_keys())} chunks hot in {budget / 1e6:.1f} MB budget "
              f"({p.policy}); {p.computed} computed, {p.reused} copied from cubes, "
              f"{len(p.of('evict'))} evicted; store {p.stored_before / 1e6:.1f} -> "
              f"{(p.stored_after if p.applied else p.stored_before) / 1e6:.1f} MB "
              f"in {p.apply_s:.1f} s", markup=False)


def register(app: typer.Typer) -> None:
    app.command("schedule")(schedule)
