"""MemScheduler through the entry point (MemOS paper §5.2; spec §13): rank a session's memories
by their recorded use, keep KV chunks for the hottest that fit a budget, evict the rest, and
name parameter-tier candidates and cold memories. The policies and the plan are
:mod:`memos_cli.scheduler`; this module gathers what they need from cubes or a vault."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memos_cli.cube.kv import STORAGE_DTYPES
from memos_cli.errors import UsageError
from memos_cli.models.fingerprint import fingerprint_digest
from memos_cli.scheduler import policy as scheduler
from memos_cli.scheduler.chunks import ChunkStore
from memos_cli.scheduler.usage import UsageStore, cube_store
from memos_cli.tiers import prompt

if TYPE_CHECKING:
    from memos_cli.api.session import Session


@dataclass
class ScheduleResult:
    """What :func:`schedule` decided (``plan``: a :class:`memos_cli.scheduler.policy.Plan`, ``None``
    when no use was recorded yet, then ``reason`` says so), for which ``scope`` (the cubes or
    vault, as shown), in which chunk-store set, with which ``model``, and the chunk sets of
    other models it left alone."""

    scope: str
    plan: Any = None
    reason: str | None = None
    store_set: str | None = None
    model: str | None = None
    budget: int = 0
    others: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``memos schedule --json`` document."""
        if self.plan is None:
            return {"scope": self.scope, "applied": False, "reason": self.reason}
        return {"scope": self.scope, "store_set": self.store_set, "model": self.model,
                **self.plan.to_dict()}


def scope_name(vault: str | Path | None, cubes: list[Any]) -> str:
    """The chunk store's name for the memories of a vault (as the user named it) or of a set
    of cubes."""
    if vault is not None:
        where = str(vault)
        where = where if "://" in where else str(Path(where).resolve())
        return "vault-" + hashlib.sha256(where.encode()).hexdigest()[:16]
    ids = sorted(c.manifest.cube_id for c in cubes)
    if len(ids) == 1:
        return f"cube-{ids[0]}"
    return "cubes-" + hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]


def schedule(session: Session, *, size: int | None = None, share: float | None = None,
             policy: str = "decay", half_life: float | None = None, dtype: str = "float16",
             lora_min_uses: int = 5, lora_window_days: float = 7.0, cold_days: float = 30.0,
             dry_run: bool = False,
             progress: Callable[[int, int], None] | None = None) -> ScheduleResult:
    """Plan (and unless ``dry_run`` apply) the tiers of the session's memories.

    The KV budget is ``size`` bytes, or ``share`` (0 to 1) of the bytes of every memory's
    chunk. ``policy``: :data:`memos_cli.scheduler.policy.POLICIES`; ``half_life`` of the decay score
    in days (default 7); ``dtype``: storage dtype of new chunks; parameter-tier candidates are
    used ``lora_min_uses`` times over ``lora_window_days``; cold memories are unused for
    ``cold_days``. ``progress(done, total)`` hears the chunks computed.

    Raises:
        UsageError: an unknown policy or dtype, a value out of range, no budget.
        ModelNotFoundError: the model is not available locally.
    """
    if (size is None) == (share is None):
        raise UsageError("give the KV budget as a size or as a share (one of them)")
    if policy not in scheduler.POLICIES:
        raise UsageError(f"--policy {policy!r} is not one of {', '.join(scheduler.POLICIES)}")
    if dtype not in STORAGE_DTYPES:
        raise UsageError(f"--dtype {dtype!r} is not one of {', '.join(STORAGE_DTYPES)}")
    if lora_min_uses < 1 or lora_window_days < 0 or cold_days <= 0:
        raise UsageError("--lora-min-uses must be >= 1, --lora-window-days >= 0, "
                         "--cold-days > 0")
    hl = scheduler.half_life_of(half_life)
    cubes, vault = session.cubes, session.vault
    if vault is not None:
        memories = vault.state(vectors=False).memories
        stores = [UsageStore(vault.place.usage_dir())]
        usage = stores[0].indicators(half_life=hl)
        where = f"vault {vault.path}"
    else:
        memories, usage = [], {}
        stores = [cube_store(c.manifest.cube_id) for c in cubes]
        for c, st in zip(cubes, stores, strict=True):
            c.require_plaintext()
            memories += c.memories
            usage.update(st.indicators(half_life=hl))
        where = ", ".join(str(c.path) for c in cubes)
    memories = [m for m in memories if m.current]  # superseded memories get no tier (§4.6)
    usage = {i: u for i, u in usage.items() if i in {m.id for m in memories}}
    if not usage:
        return ScheduleResult(where, reason=f"no usage recorded yet for {where}: nothing to "
                                            "schedule (search or run first)")

    lm = session.chat()
    chunk_bytes, prefix_bytes = scheduler.estimator(lm, memories, dtype)
    budget = size if size is not None else int(
        (share or 0.0) * (prefix_bytes + sum(chunk_bytes(m) for m in memories)))
    store = ChunkStore()
    digest = fingerprint_digest(lm.fingerprint())
    sid = store.set_for(digest, prompt.LAYOUT, dtype)
    scope = scope_name(None if vault is None else session.vault_name, cubes)
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
            scheduler.apply(p, lm, s, memories, scope=scope, cubes=cubes, progress=progress)
    elif not dry_run:
        p.applied, p.stored_after = True, p.stored_before
    return ScheduleResult(where, p, store_set=sid, model=lm.name, budget=budget, others=others)
