"""A cube's page: its manifest, tiers with their sizes, signature state and signer, readers,
sources, and a diff against another served cube (:func:`memos_cli.lifecycle.update.diff`),
each memory in it filtered for the viewer."""

from __future__ import annotations

from typing import Any

from memos_cli.cube import Cube, layout
from memos_cli.errors import UsageError
from memos_cli.lifecycle.update import diff as cube_diff
from memos_cli.memory import resolve_id
from memos_cli.ui.common import PageError, Viewer, card

#: Which tier a cube file belongs to, by its first path component (spec §3).
_TIER_OF = {layout.KV_DIR: "activation", layout.LORA_DIR: "parameter",
            layout.MANIFEST: "manifest", layout.SIGNATURE: "manifest"}


def cube(v: Viewer, cube_id: str, against: str | None = None) -> dict[str, Any]:
    """A served cube (by place, id or id prefix: :meth:`Viewer.cube`); in a vault, an installed
    cube's entry with the memories of it this user may read.

    Raises:
        PageError: 404 no such cube, 400 a diff with a cube that is not served.
    """
    if not v.session.cubes:
        return installed(v, cube_id)
    c = v.cube(cube_id)
    if c is None:
        raise PageError(404, f"no cube {cube_id} is served")
    m = c.manifest
    sizes: dict[str, int] = {}
    for f in c.files:
        tier = _TIER_OF.get(f.split("/", 1)[0], "plaintext")
        sizes[tier] = sizes.get(tier, 0) + (c.path / f).stat().st_size
    mine, hidden = v.readable(c.memories if c.has_plaintext else [])
    tiers = v.tiers(mine[:200], [c])
    page: dict[str, Any] = {
        "cube_id": m.cube_id, "name": m.name, "path": str(c.path),
        "description": m.description, "format_version": m.format_version,
        "created_at": m.created_at, "tiers": list(m.tiers), "tier_bytes": sizes,
        "bytes": sum(sizes.values()), "files": len(c.files), "signed": c.signed,
        "signer": v.signer(c), "readers": list(m.readers or []),
        "sources": list(m.provenance.get("sources", [])), "manifest": m.raw,
        "segments": [{k: s.get(k) for k in ("id", "model", "tokens", "storage_dtype", "size")}
                     for s in c.segments],
        "chunk_sets": [{"id": cs.id, "model": cs.model, "chunks": len(cs.chunks),
                        "dtype": cs.storage_dtype, "bytes": cs.bytes} for cs in c.chunk_sets],
        "memories": [card(x, tiers) for x in mine[:200]], "memories_readable": len(mine),
        "hidden_by_access": hidden,
        "n": v.session.cubes.index(c) + 1,
        "others": [{"n": n, "cube_id": o.manifest.cube_id, "name": o.manifest.name,
                    "path": str(o.path)}
                   for n, o in enumerate(v.session.cubes, 1) if o is not c]}
    if against:
        other = v.cube(against)
        if other is None:
            raise PageError(400, f"diff: no cube {against} is served (serve both: memos ui "
                                 "A.memcube B.memcube)")
        page["diff"] = diff(v, c, other)
    return page


def diff(v: Viewer, a: Cube, b: Cube) -> dict[str, Any]:
    """``memos diff A B`` with the memories this user may not read left out and counted
    (``hidden_by_access``); the manifest, tier and file differences are the cubes' own."""
    d = cube_diff(a.path, b.path)
    ok_a = {m.id for m in (a.memories if a.has_plaintext else []) if v.may_read(m)}
    ok_b = {m.id for m in (b.memories if b.has_plaintext else []) if v.may_read(m)}
    hidden = 0

    def keep(rows: list[Any], ids: set[str], key: Any) -> list[Any]:
        nonlocal hidden
        out = [r for r in rows if key(r) in ids]
        hidden += len(rows) - len(out)
        return out

    d["added_memories"] = keep(d["added_memories"], ok_b, lambda r: r["id"])
    d["removed_memories"] = keep(d["removed_memories"], ok_a, lambda r: r["id"])
    d["changed"] = keep(d["changed"], ok_a & ok_b, lambda r: r["id"])
    d["metadata_changed"] = keep(d["metadata_changed"], ok_a & ok_b, lambda r: r["id"])
    d["added"] = [r["id"] for r in d["added_memories"]]
    d["removed"] = [r["id"] for r in d["removed_memories"]]
    d["hidden_by_access"] = hidden
    return d


def installed(v: Viewer, cube_id: str) -> dict[str, Any]:
    """An installed cube of the vault: its entry (installer, signer, source, loads) and the
    memories of it this user may read. A cube is shown to its installer and to users who may
    read one of its memories.

    Raises:
        PageError: 404 no such installed cube, or none shown to this user.
    """
    state = v.session.vault.state(vectors=False)
    try:
        cid = resolve_id(cube_id, list(state.cubes), "cube", strict=False)
    except UsageError as e:  # several installed cubes start with it
        raise PageError(400, str(e)) from None
    if cid not in state.cubes:
        raise PageError(404, f"no installed cube {cube_id} in {v.session.where}")
    mine, hidden = v.readable(m for m in state.memories if state.origin.get(m.id) == cid)
    if not mine and state.cubes[cid].get("installed_by") != v.user:
        raise PageError(404, f"no installed cube {cube_id} with memories {v.user} may read")
    tiers = v.tiers(mine[:200])
    return {"cube_id": cid, "installed": True, **state.cubes[cid],
            "memories": [card(m, tiers) for m in mine[:200]], "memories_readable": len(mine),
            "hidden_by_access": hidden}
