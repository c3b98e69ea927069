"""The pages about memories: the start page, search, and one memory (its record and
provenance, version timeline, access decision, usage over time and tiers)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from memos_cli.errors import UsageError, one_line
from memos_cli.memory import Memory, format_time
from memos_cli.ui.common import PageError, Viewer, card, day
from memos_cli.validity import view_of

#: Bounds on a search from the page: query length (characters) and results.
LIMITS = {"query": 4096, "k": 100}
#: The tier filter of the search page: a memory held in that tier beyond its text.
TIER_FILTERS = ("", "kv", "lora")
#: A tier filter looks this many times further down the ranking for held memories.
TIER_DEPTH = 5


def home(v: Viewer) -> dict[str, Any]:
    """What is served, and whose view it is."""
    s = v.session
    if s.cubes:
        cubes = [{"n": n, "cube_id": c.manifest.cube_id, "name": c.manifest.name,
                  "path": str(c.path), "memories": c.manifest.counts.get("memories", 0),
                  "tiers": list(c.manifest.tiers), "signer": v.signer(c)}
                 for n, c in enumerate(s.cubes, 1)]
        return {"serving": "cubes", "cubes": cubes}
    state = s.vault.state(vectors=False)
    mine, hidden = v.readable(m for m in state.memories if m.current)
    return {"serving": "vault", "vault": str(s.vault_name), "version": s.vault.version,
            "pinned": s.vault.pinned, "memories_readable": len(mine),
            "hidden_by_access": hidden, "cubes": len(state.cubes)}


def search(v: Viewer, q: str = "", k: int = 10, as_of: str | None = None,
           history: bool = False, tier: str = "") -> dict[str, Any]:
    """``memos search`` from the page: the ``k`` best memories this user may read, how each
    was found (vector rank, full-text rank, a reader's row) and how many closer ones access
    control hid. ``as_of`` / ``history`` as the CLI's; ``tier`` (``kv``, ``lora``) keeps the
    memories held in that tier, looking :data:`TIER_DEPTH` times deeper.

    Raises:
        PageError: 400 for a query or option out of bounds.
    """
    page: dict[str, Any] = {"query": q, "k": k, "as_of": as_of or "", "history": history,
                            "tier": tier, "results": [], "hidden_by_access": 0}
    if not q.strip():
        return page
    if len(q) > LIMITS["query"]:
        raise PageError(400, f"the query is {len(q)} characters, over the "
                             f"{LIMITS['query']} character limit")
    if not 1 <= k <= LIMITS["k"]:
        raise PageError(400, f"k must be between 1 and {LIMITS['k']}")
    if tier not in TIER_FILTERS:
        raise PageError(400, f"tier must be one of kv, lora (or empty), not {one_line(tier)}")
    try:
        view = view_of(as_of or None, history)
    except UsageError as e:
        raise PageError(400, str(e)) from None
    result = v.session.search(q, k * TIER_DEPTH if tier else k, view)
    tiers = v.tiers(h.memory for h in result.hits)
    rows: list[dict[str, Any]] = []
    for h in result.hits:
        held = tiers.get(h.memory.id, [])
        if tier and not any(t.startswith(tier) for t in held):
            continue
        found = []
        if h.vector_rank is not None:
            found.append(f"vector #{h.vector_rank}")
        if h.text_rank is not None:
            found.append(f"full text #{h.text_rank}")
        if h.via != "memory":
            found.append(f"reader row ({h.via})")
        if h.precedes:  # put above a memory that ranked higher (spec §4.6, precedence)
            found.append(f"ranked above {h.precedes['id'][:8]}: {h.precedes['reason']}")
        rows.append({"rank": len(rows) + 1, "score": round(h.score, 6), "found": found,
                     "via": h.via, "matched": h.matched, **card(h.memory, tiers)})
    page.update(results=rows[:k], hidden_by_access=result.hidden, search_s=result.search_s)
    return page


def memory(v: Viewer, memory_id: str) -> dict[str, Any]:
    """One memory: its record and provenance, its version timeline (supersessions with their
    reasons), the access decision for this user with its rule, its usage per day and the
    tiers that hold it. The read is logged (``show``, as ``memos vault show``).

    Raises:
        PageError: 404 no such memory, 403 not readable by this user.
    """
    s = v.session
    try:
        hist = s.history(memory_id)
    except UsageError as e:
        status = 403 if "not readable" in str(e) else 404
        raise PageError(status, str(e)) from None
    mid = hist.memory_id
    m = next((x for x in reversed(hist.versions) if x.id == mid), None)
    if m is None or not v.may_read(m):  # only earlier versions are readable
        raise PageError(403, f"memory {mid} is not readable by {v.user}")
    decision = _decision(v, m)
    cube_id = hist.cube_id or next((c.manifest.cube_id for c in s.cubes
                                    if any(x.id == mid for x in c.memories)), None)
    tiers = v.tiers([m])
    page = {**card(m, tiers), "record": {**m.to_dict(), "text": m.render()},
            "provenance": _provenance(v, m, cube_id), "access": decision,
            "timeline": [_step(x, x.id == mid) for x in hist.versions],
            "events": [_event(e) for e in hist.events],
            "usage": usage(v, mid, cube_id)}
    if not s.cubes:
        s.vault.log(v.user, "show", cube_id=cube_id, memory_ids=[mid],
                    detail={"via": "memos ui"})
    return page


def _decision(v: Viewer, m: Memory) -> dict[str, Any]:
    if v.whole_cubes:
        return {"read": True, "read_rule": "the cube is served whole (no --as)",
                "user": v.user}
    why = v.session.why(m.id)
    return {k: why[k] for k in ("user", "read", "read_rule", "write", "write_rule",
                                "owner", "visibility", "readers") if k in why}


def _provenance(v: Viewer, m: Memory, cube_id: str | None) -> dict[str, Any]:
    s = v.session
    out: dict[str, Any] = {"source": m.source_file, "lines": [m.line_start, m.line_end],
                           "turn_id": m.turn_id, "conversation_id": m.conversation_id,
                           "content_hash": m.content_hash, "origin": m.origin,
                           "created_at": format_time(m.created_at), "cube_id": cube_id}
    cube = v.cube(cube_id) if cube_id and s.cubes else None
    if cube is not None:
        out.update(cube_name=cube.manifest.name, signer=v.signer(cube))
        src = next((x for x in cube.manifest.provenance.get("sources", [])
                    if x.get("path") == m.source_file), None)
        if src is not None:
            out["source_sha256"] = src.get("sha256")
    elif cube_id:
        info = s.vault.part([], []).cubes.get(cube_id, {})
        out.update(cube_name=info.get("name"), signer=info.get("signer"),
                   installed_by=info.get("installed_by"), installed_at=info.get("installed_at"))
    return out


def _step(m: Memory, this: bool) -> dict[str, Any]:
    return {"id": m.id, "version": m.version, "text": m.render(), "this": this,
            "valid_from": format_time(m.valid_from), "valid_to": format_time(m.valid_to),
            "supersedes": m.supersedes, "superseded_by": m.superseded_by,
            "reason": m.supersession, "updated_at": format_time(m.updated_at)}


def _event(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: rec.get(k) for k in ("time", "user", "op", "memory_ids", "detail")}


def usage(v: Viewer, memory_id: str, cube_id: str | None) -> dict[str, Any]:
    """A memory's retrievals and uses per day (UTC), oldest first, from the usage store."""
    events = v.usage_store(cube_id).events()
    retrieved: Counter[str] = Counter()
    used: Counter[str] = Counter()
    cols = [events.column(n).to_pylist() for n in ("memory_id", "retrieved", "used", "at")]
    for mid, was_retrieved, was_used, at in zip(*cols, strict=True):
        if mid == memory_id:
            retrieved[day(at)] += int(bool(was_retrieved))
            used[day(at)] += int(bool(was_used))
    days = sorted(set(retrieved) | set(used))
    return {"days": days, "retrievals": [retrieved[d] for d in days],
            "uses": [used[d] for d in days]}
