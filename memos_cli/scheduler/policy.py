"""MemScheduler (MemOS paper §4.2 "Policy-Aware Scheduling", §5): move memories between tiers
by use.

From usage indicators (:mod:`memos_cli.scheduler.usage`) and a policy, a :class:`Plan` says which
memories get a KV chunk in the chunk store (the activation tier) within a byte budget, which
chunks fall out, which memories are candidates for the parameter tier (used often over a long
window, unchanged), and which are cold (archive candidates for ``memos vault gc --cold``).
:func:`plan` is pure (no model, no files); :func:`apply` carries a plan out on the chunk store
(:mod:`memos_cli.scheduler.chunks`), computing only the chunks that no store or cube holds yet.

Policies (higher ranks first):

- ``decay``: the decayed access frequency, ``sum(0.5 ** (age / half_life))`` per access;
- ``lfu``: the number of accesses (least frequently used goes first);
- ``lru``: the time of the last access;
- ``memos``: MemOS's own importance score as its scheduler computes it
  (``MemoryMonitorItem.get_importance_score``, weights ``[0.9, 0.05, 0.05]``):
  ``0.9 * sorting + 0.05 * min(0.05 * keywords, 5) + 0.05 * min(0.05 * count, 2)``, with
  ``sorting = k + 1 - rank`` of the memory's latest retrieval, ``keywords`` the number of
  retrievals in which it matched the full-text query (MemOS counts query keywords in the
  text), ``count`` its retrievals; no recency. Kept for comparison (bench/scheduler.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from memos_cli.cube.chunks import layout_digest, member
from memos_cli.cube.kv import QUANT_INT8, read_segment, write_segment
from memos_cli.cube.layout import atomic_write_bytes
from memos_cli.errors import FormatError, UsageError
from memos_cli.memory import Memory, format_time
from memos_cli.scheduler.chunks import copy_atomic, evict, write_atomic
from memos_cli.scheduler.usage import DEFAULT_HALF_LIFE, Indicators
from memos_cli.tiers import prompt

POLICIES = ("decay", "lfu", "lru", "memos")
#: Parameter-tier candidates: at least this many uses, spread over at least this long.
LORA_MIN_USES = 5
LORA_WINDOW = timedelta(days=7)
#: Cold: no use for this long (or never used and older than this).
COLD_AFTER = timedelta(days=30)
MEMOS_WEIGHTS = (0.9, 0.05, 0.05)


def score(policy: str, u: Indicators | None, *, k: int = 10) -> float:
    """The rank of a memory under ``policy`` (0 for a memory never used). ``u.score`` is the
    decayed frequency at the time the indicators were computed."""
    if u is None:
        return 0.0
    if policy == "decay":
        return u.score
    if policy == "lfu":
        return float(u.accesses)
    if policy == "lru":
        return u.last_use.timestamp()
    if policy == "memos":
        sorting = float(max(k + 1 - u.last_rank, 0)) if u.last_rank is not None else 0.0
        w = MEMOS_WEIGHTS
        return (sorting * w[0] + min(u.text_matches * w[1], 5) * w[1]
                + min(u.retrievals * w[2], 2) * w[2])
    raise UsageError(f"--policy {policy!r} is not one of {', '.join(POLICIES)}")


@dataclass
class Decision:
    """One line of a plan: ``action`` is ``promote`` (chunk to make, by computing or by
    copying it from a cube), ``keep`` (already stored), ``evict``, ``skip`` (hot but over the
    budget), ``lora`` (parameter-tier candidate) or ``cold``."""

    action: str
    memory_id: str | None
    key: str
    score: float
    last_use: datetime | None
    bytes: int
    reason: str

    def line(self) -> str:
        who = (self.memory_id or self.key)[:12]
        return f"{self.action:<7} {who:<12} {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "memory_id": self.memory_id, "key": self.key,
                "score": round(self.score, 6), "last_use": format_time(self.last_use),
                "bytes": self.bytes, "reason": self.reason}


@dataclass
class Plan:
    """What :func:`plan` decided, and (after :func:`apply`) what it cost. Bytes are those of
    the scope's chunks in the store; ``budget`` includes the prefix."""

    policy: str
    budget: int
    decisions: list[Decision] = field(default_factory=list)
    stored_before: int = 0
    stored_after: int = 0
    computed: int = 0
    reused: int = 0
    evicted: int = 0
    plan_s: float = 0.0
    apply_s: float = 0.0
    applied: bool = False

    def of(self, action: str) -> list[Decision]:
        return [d for d in self.decisions if d.action == action]

    def hot_keys(self) -> set[str]:
        return {d.key for d in self.decisions if d.action in ("promote", "keep")}

    def to_dict(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for d in self.decisions:
            counts[d.action] = counts.get(d.action, 0) + 1
        return {"policy": self.policy, "budget": self.budget, "counts": counts,
                "stored_before": self.stored_before, "stored_after": self.stored_after,
                "computed": self.computed, "reused": self.reused, "evicted": self.evicted,
                "plan_s": round(self.plan_s, 4), "apply_s": round(self.apply_s, 4),
                "applied": self.applied, "decisions": [d.to_dict() for d in self.decisions]}


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def _when(t: datetime | None, now: datetime) -> str:
    if t is None:
        return "never used"
    days = (now - t).total_seconds() / 86400
    return f"last use {(format_time(t) or '')[:19]}Z ({days:.1f} d ago)"


def plan(memories: Sequence[Memory], usage: dict[str, Indicators], *, policy: str,
         budget: int, chunk_bytes: Callable[[Memory], int], stored: dict[str, int],
         key_of: Callable[[Memory], str], prefix_bytes: int = 0, now: datetime | None = None,
         k: int = 10, lora_min_uses: int = LORA_MIN_USES, lora_window: timedelta = LORA_WINDOW,
         cold_after: timedelta = COLD_AFTER) -> Plan:
    """Decide the scope's chunks for ``budget`` bytes (prefix included).

    ``memories``: the current memories in scope; ``usage``: their indicators; ``stored``: chunk
    key -> bytes of the scope's chunks in the store now; ``chunk_bytes(m)``: a chunk's size
    (the stored size when it is stored, an estimate otherwise); ``key_of(m)``: its chunk key.
    Memories never used are not promoted. Ties rank by later last use, then id.

    Raises:
        UsageError: an unknown policy or a budget below 1 byte.
    """
    if policy not in POLICIES:
        raise UsageError(f"--policy {policy!r} is not one of {', '.join(POLICIES)}")
    if budget <= 0:
        raise UsageError("--kv-budget must be above 0 bytes")
    now = now or datetime.now(timezone.utc)
    t0 = datetime.now(timezone.utc)
    out = Plan(policy, budget, stored_before=sum(stored.values()))
    used = [m for m in memories if m.id in usage]
    ranked = sorted(used, key=lambda m: (-score(policy, usage[m.id], k=k),
                                         -usage[m.id].last_use.timestamp(), m.id))
    total = prefix_bytes
    hot: set[str] = set()
    for m in ranked:
        u = usage[m.id]
        s = score(policy, u, k=k)
        key = key_of(m)
        if key in hot:
            continue
        size = stored.get(key) or chunk_bytes(m)
        why = f"{policy} score {s:.3g}, {_when(u.last_use, now)}, {_mb(size)}"
        if total + size > budget:
            out.decisions.append(Decision("skip", m.id, key, s, u.last_use, size,
                                          why + f": over the budget ({_mb(total)} used)"))
            continue
        total += size
        hot.add(key)
        action = "keep" if key in stored else "promote"
        out.decisions.append(Decision(action, m.id, key, s, u.last_use, size, why))
    by_key = {key_of(m): m for m in memories}
    for key, size in sorted(stored.items()):
        if key not in hot:
            gone = by_key.get(key)
            was = usage.get(gone.id) if gone is not None else None
            last = was.last_use if was else None
            reason = ("memory no longer in scope" if gone is None else
                      f"{policy} score {score(policy, was, k=k):.3g}, {_when(last, now)}, "
                      f"{_mb(size)}: fell out of the budget")
            out.decisions.append(Decision("evict", gone.id if gone else None, key,
                                          score(policy, was, k=k), last, size, reason))
    for m in memories:
        u = usage.get(m.id)  # type: ignore[assignment]
        if (u is not None and u.uses >= lora_min_uses and u.unchanged
                and u.content_hash == m.content_hash
                and u.last_use - u.first_use >= lora_window):
            span = (u.last_use - u.first_use).total_seconds() / 86400
            out.decisions.append(Decision(
                "lora", m.id, key_of(m), u.score, u.last_use, 0,
                f"used {u.uses} times over {span:.1f} d, unchanged: a parameter-tier "
                f"candidate"))
        last = u.last_use if u is not None else None
        if (last or m.created_at) <= now - cold_after:
            since = ("never used, created " + (format_time(m.created_at) or "")[:10]
                     if last is None else _when(last, now))
            out.decisions.append(Decision("cold", m.id, key_of(m), u.score if u else 0.0,
                                          last, 0, f"{since}: archive candidate"))
    out.plan_s = (datetime.now(timezone.utc) - t0).total_seconds()
    return out


def half_life_of(days: float | None) -> timedelta:
    """``--half-life`` in days (default: the usage store's, 7 days). Raises ``UsageError``."""
    if days is None:
        return DEFAULT_HALF_LIFE
    if not days > 0:
        raise UsageError("--half-life must be above 0 days")
    return timedelta(days=days)


SCOPES_DIR = "scopes"
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "int8": 1}
#: A chunk file's safetensors header and metadata, about (measured: 3 to 5 KB).
HEADER_BYTES = 4096


def estimator(chat: Any, memories: Sequence[Memory], dtype: str
              ) -> tuple[Callable[[Memory], int], int]:
    """``(chunk_bytes(memory), prefix_bytes)``: the size a chunk file of ``chat`` in ``dtype``
    will have, estimated from its token count (keys and values of every layer, the token ids,
    a header), before any is computed."""
    fp = chat.fingerprint()
    per_token = fp["num_layers"] * fp["num_kv_heads"] * fp["head_dim"] * 2 * DTYPE_BYTES[dtype]
    per_token += 8
    tokens = {m.id: len(prompt.chunk_ids(chat.tokenizer, [m])) for m in memories}

    def chunk_bytes(m: Memory) -> int:
        n = tokens.get(m.id)
        if n is None:
            n = tokens[m.id] = len(prompt.chunk_ids(chat.tokenizer, [m]))
        return n * per_token + HEADER_BYTES

    return chunk_bytes, len(prompt.prefix_ids(chat.tokenizer)) * per_token + HEADER_BYTES


def scope_keys(store_set: Any) -> dict[str, set[str]]:
    """Each scope's chunk keys in a store set (``<set>/scopes/<scope>.json``)."""
    import json

    out: dict[str, set[str]] = {}
    d = store_set.path / SCOPES_DIR
    if d.is_dir():
        for p in sorted(d.glob("*.json")):
            try:
                out[p.stem] = set(json.loads(p.read_text("utf-8"))["keys"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise FormatError(f"unreadable chunk-store scope: {e}", path=p) from e
    return out


def stored_for(store_set: Any, scope: str) -> dict[str, int]:
    """The scope's chunks present in the store set: key -> bytes."""
    have = store_set.stored()
    return {k: have[k] for k in scope_keys(store_set).get(scope, set()) if k in have}


def cube_chunk(cubes: Sequence[Any], chat: Any, memory: Memory) -> Any:
    """A cube's stored chunk of ``memory`` alone (one-memory chunk sets of this model and
    prompt layout, any dtype) as ``(path, storage_dtype)``, or ``None``."""
    fps = chat.fingerprint_digests()
    lay = layout_digest(prompt.LAYOUT)
    for cube in cubes:
        for s in cube.chunk_sets:
            if (s.group == "memory" and s.model_fingerprint_sha256 in fps
                    and s.layout_sha256 == lay):
                entry = s.by_memory().get(memory.id)
                if entry is not None:
                    return member(cube.path, entry, "KV chunk"), s.storage_dtype
    return None


def apply(p: Plan, chat: Any, store_set: Any, memories: Sequence[Memory], *, scope: str,
          cubes: Sequence[Any] = (), progress: Callable[[int, int], None] | None = None) -> Plan:
    """Carry out ``p`` on ``store_set`` for ``scope`` (hold the store's lock around it).

    New chunks are written first (copied from the store or a cube when one holds them,
    computed with ``chat`` otherwise; a chunk whose real size would pass the budget is
    skipped), then the scope's key list is replaced atomically (the commit point), then files
    no scope lists any more are removed. A kill leaves the old list, or the new one with
    orphans the next apply removes.
    """
    import json
    import time

    from memos_cli.tiers import chunk_build

    t0 = time.perf_counter()
    by_id = {m.id: m for m in memories}
    dtype = store_set.storage_dtype
    prefix = chunk_build.build_prefix(chat, dtype)
    total = 0
    if not store_set.prefix.is_file():
        write_atomic(store_set.prefix, lambda tmp: write_segment(tmp, prefix.meta,
                                                                 prefix.token_ids,
                                                                 prefix.layers))
    total += store_set.prefix.stat().st_size
    hot = {d.key: d for d in p.decisions if d.action == "keep"}
    total += sum(d.bytes for d in hot.values())
    todo = p.of("promote")
    compute: list[Decision] = []
    for d in todo:
        m = by_id[d.memory_id or ""]
        target = store_set.chunk(d.key)
        if target.is_file():  # another scope holds it already
            continue
        found = cube_chunk(cubes, chat, m)
        if found is None:
            compute.append(d)
            continue
        src, src_dtype = found
        if src_dtype == dtype:
            copy_atomic(src, target)
        else:
            seg = read_segment(src)
            meta = _retyped(seg.meta, dtype)
            write_atomic(target, lambda tmp, s=seg, mt=meta: write_segment(
                tmp, mt, s.token_ids, s.layers))
        p.reused += 1
    groups = [[by_id[d.memory_id or ""]] for d in compute]
    for n, (i, built) in enumerate(chunk_build.build_chunks(chat, prefix, groups, dtype), start=1):
        write_atomic(store_set.chunk(compute[i].key), lambda tmp, b=built: write_segment(
            tmp, b.meta, b.token_ids, b.layers))
        p.computed += 1
        if progress:
            progress(n, len(compute))
    others = set().union(*[keys for name, keys in scope_keys(store_set).items()
                           if name != scope])
    for d in todo:  # in rank order, at their real sizes
        size = store_set.chunk(d.key).stat().st_size
        if total + size > p.budget:
            d.action, d.reason = "skip", d.reason + ": over the budget at its real size"
            if d.key not in others:
                evict(store_set, d.key)
        else:
            total += size
            d.bytes = size
            hot[d.key] = d
    scopes_dir = store_set.path / SCOPES_DIR
    scopes_dir.mkdir(exist_ok=True)
    record = {"scope": scope, "policy": p.policy, "budget": p.budget,
              "at": format_time(datetime.now(timezone.utc)), "keys": sorted(hot)}
    atomic_write_bytes(scopes_dir / f"{scope}.json",
                       (json.dumps(record, indent=1) + "\n").encode("utf-8"))
    listed = set().union(*scope_keys(store_set).values())
    for key in store_set.stored():
        if key not in listed:
            p.evicted += 1 if evict(store_set, key) else 0
    p.stored_after = sum(stored_for(store_set, scope).values())
    p.apply_s = time.perf_counter() - t0
    p.applied = True
    return p


def _retyped(meta: Any, dtype: str) -> Any:
    import dataclasses

    return dataclasses.replace(meta, storage_dtype=dtype,
                               quantization=QUANT_INT8 if dtype == "int8" else "none")
