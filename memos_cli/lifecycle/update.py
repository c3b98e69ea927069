"""Changing a cube's memories in place (``memos add``, ``memos rm-memories``) and comparing two
cubes (``memos diff``), for pipelines that keep a cube up to date (spec §5, ``revision``).

An update re-embeds only memories it has not seen (unchanged ones keep their stored vectors),
rewrites ``memories.arrow`` and the index atomically (``cube.rewrite``), increments the
manifest's ``revision``, and re-signs with a key or leaves the cube unsigned, as every in-place
change does. A memory whose id is already in the cube with other content is a new version of
it: ``version`` is one more than the old one's, and ``extra.supersedes`` keeps the old content
hash and version.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memos_cli.cube.cube import Cube
from memos_cli.cube.verify import open_verified
from memos_cli.digest import sha256_file
from memos_cli.errors import EmptyCorpusError, UsageError
from memos_cli.lifecycle.evolve import Ledger
from memos_cli.lifecycle.integrate import integrate
from memos_cli.lifecycle.rewrite import UpdateReport, updatable, write_plaintext_tier
from memos_cli.memory import Memory, derived_reader, orphaned_derived
from memos_cli.sources import read_sources
from memos_cli.tiers.plaintext import check_embedder


def add(path: str | Path | Cube, paths: list[str | Path], *, embedder: Any, defaults: Any,
        key: str | Path | None = None, supersede: bool = True,
        dry_run: bool = False) -> UpdateReport:
    """Add the memories of ``paths`` to the cube at ``path`` (spec §4.6), or to ``path`` when
    it is a cube opened and verified already (``memos_cli.api.Session``'s).

    Identical ones (content hash) are skipped; one with an id already in the cube is a new
    version of it. A file the cube already holds is a source edit: its memories that changed
    supersede the ones they replace (matched in the same section, most similar first), and
    those whose text left the file are removed. Other new memories are decided against the
    cube's current memories (:class:`~memos_cli.lifecycle.evolve.Ledger`) unless
    ``supersede`` is false. Source paths are recorded as the cube recorded them (the base
    directory is taken from a recorded source that the path given ends with), unless
    ``defaults.base`` is set. With ``dry_run``, nothing is written.

    Raises:
        SourceError, EmptyCorpusError: as ``pack``. UsageError: a cube with other tiers.
        EmbedderMismatchError: ``embedder`` did not build the cube's index.
    """
    cube = path if isinstance(path, Cube) else open_verified(path)
    updatable(cube)
    check_embedder(cube, embedder)
    if getattr(defaults, "base", None) is None:
        defaults = dataclasses.replace(defaults, base=_recorded_base(cube, paths))
    read = read_sources(list(paths), defaults)
    old = cube.memories
    report = UpdateReport(str(cube.path))
    report.notes += [f"skipped unreadable {u}" for u in read.unreadable]
    hashes = {m.content_hash for m in old}
    incoming: list[Memory] = []
    provenance = []
    for res in read.results:
        report.notes += [f"{res.path}: {n}" for n in res.notes]
        kept = [m for m in res.memories if m.content_hash not in hashes]
        report.duplicates += len(res.memories) - len(kept)
        hashes.update(m.content_hash for m in kept)
        incoming += kept
        provenance.append({"path": res.path, "sha256": res.sha256, "size": res.size,
                           "format": res.format, "memories": len(kept)})
    edited = {res.path: {m.content_hash for m in res.memories} for res in read.results}
    left = [m for m in old if m.source_file in edited and m.current
            and derived_reader(m) is None and m.content_hash not in edited[m.source_file]]
    if not incoming and not left:
        if report.duplicates:  # nothing written: the cube is as it was, signature too
            report.revision = cube.manifest.revision or 1
            report.signed = cube.signed
            report.notes.append("nothing new: every memory is already in the cube")
            return report
        raise EmptyCorpusError("no memories found in " + ", ".join(map(str, paths)))
    return integrate(cube, incoming, embedder=embedder, key=key, supersede=supersede,
                     dry_run=dry_run, left=left, provenance=provenance, report=report)


def _recorded_base(cube: Cube, paths: list[str | Path]) -> Path | None:
    """The base directory that makes the paths given be recorded as the cube recorded them:
    for ``notes/db.md`` (or ``notes/``) given and ``notes/db.md`` recorded, the directory
    that holds ``notes``. ``None`` when no recorded path fits (the default base then)."""
    recorded = {str(s.get("path", "")) for s in cube.manifest.provenance.get("sources", [])}
    recorded |= {m.source_file for m in cube.memories if m.source_file}
    heads = sorted({"/".join(r.split("/")[:n]) for r in recorded if r and not r.startswith("/")
                    for n in range(1, r.count("/") + 2)}, key=len, reverse=True)
    for p in paths:
        full = Path(os.path.abspath(p)).as_posix()
        for head in heads:
            if full.endswith("/" + head):
                return Path(full[:len(full) - len(head)].rstrip("/") or "/")
    return None


def remove(path: str | Path, keep: Callable[[Memory], bool], *,
           key: str | Path | None = None) -> UpdateReport:
    """Remove the memories ``keep`` rejects; the others keep their stored vectors.

    Raises:
        UsageError: nothing matched, every memory would go, or a cube with other tiers.
    """
    cube = open_verified(path)
    updatable(cube)
    stay = [m for m in cube.memories if keep(m)]
    stale = orphaned_derived(stay, set())  # derived from a removed memory: goes with it
    stay = [m for m in stay if m.id not in stale]
    gone = len(cube.memories) - len(stay)
    if gone == 0:
        raise UsageError("no memory matches; nothing removed", path=cube.path)
    if not stay:
        raise UsageError("that would remove every memory; a cube holds at least one",
                         path=cube.path)
    ledger = Ledger(cube.memories)  # mend the supersession chains through what goes
    ledger.drop(m.id for m in cube.memories if m.id not in {x.id for x in stay})
    stay = [ledger.memories[m.id] for m in stay]
    vectors = cube.index().vectors([m.id for m in stay])
    report = UpdateReport(str(cube.path), removed=gone, signed=key is not None,
                          signature_dropped=cube.signed and key is None)
    report.revision = write_plaintext_tier(cube, stay, vectors, key)
    return report


def diff(a: str | Path, b: str | Path) -> dict[str, Any]:
    """Differences from cube ``a`` to cube ``b``, in every tier and the manifest: memories
    added, removed and changed (by id and content hash, each with its source and text;
    metadata-only changes apart), every manifest key whose value differs, tiers added and
    dropped, every file added, removed or changed (by SHA-256, with sizes: a KV segment, a
    chunk set or an adapter shows here), and the signature state. ``equal`` is true when there
    are none. Both cubes are verified first."""
    ca, cb = open_verified(a), open_verified(b)
    ma = {m.id: m for m in ca.memories} if ca.has_plaintext else {}
    mb = {m.id: m for m in cb.memories} if cb.has_plaintext else {}

    def shown(m: Memory) -> dict[str, Any]:
        where = m.source_file or ""
        if m.line_start:
            where += f":{m.line_start}-{m.line_end}"
        elif m.turn_id:
            where += f"#{m.turn_id}"
        return {"id": m.id, "source": where, "text": m.render()}

    changed, meta = [], []
    for i in sorted(set(ma) & set(mb)):
        x, y = ma[i], mb[i]
        if x.content_hash != y.content_hash:
            changed.append({"id": i, "from": x.content_hash, "to": y.content_hash,
                            "source": shown(y)["source"], "text_from": x.render(),
                            "text_to": y.render()})
        elif x.to_dict() != y.to_dict():
            names = sorted(k for k, v in x.to_dict().items() if y.to_dict().get(k) != v)
            meta.append({"id": i, "fields": names})
    # a cube without "revision" is at revision 1 (spec §5)
    ra = {**ca.manifest.raw, "revision": ca.manifest.revision or 1}
    rb = {**cb.manifest.raw, "revision": cb.manifest.revision or 1}
    manifest = {k: [ra.get(k), rb.get(k)] for k in sorted(set(ra) | set(rb))
                if ra.get(k) != rb.get(k)}
    fa = {f: (sha256_file(ca.path / f), (ca.path / f).stat().st_size) for f in ca.files}
    fb = {f: (sha256_file(cb.path / f), (cb.path / f).stat().st_size) for f in cb.files}
    files = {"added": [{"path": f, "size": fb[f][1]} for f in sorted(set(fb) - set(fa))],
             "removed": [{"path": f, "size": fa[f][1]} for f in sorted(set(fa) - set(fb))],
             "changed": [{"path": f, "from_size": fa[f][1], "to_size": fb[f][1]}
                         for f in sorted(set(fa) & set(fb)) if fa[f][0] != fb[f][0]]}
    out: dict[str, Any] = {
        "a": str(ca.path), "b": str(cb.path),
        "added": sorted(set(mb) - set(ma)), "removed": sorted(set(ma) - set(mb)),
        "added_memories": [shown(mb[i]) for i in sorted(set(mb) - set(ma))],
        "removed_memories": [shown(ma[i]) for i in sorted(set(ma) - set(mb))],
        "changed": changed, "metadata_changed": meta, "manifest": manifest,
        "tiers_added": [t for t in cb.manifest.tiers if t not in ca.manifest.tiers],
        "tiers_dropped": [t for t in ca.manifest.tiers if t not in cb.manifest.tiers],
        "files": files,
        "bytes": [sum(v[1] for v in fa.values()), sum(v[1] for v in fb.values())],
        "signed": [ca.signed, cb.signed],
    }
    out["equal"] = not any(out[k] for k in ("added", "removed", "changed", "metadata_changed",
                                            "manifest", "tiers_added", "tiers_dropped")) \
        and not any(files.values()) and ca.signed == cb.signed
    return out
