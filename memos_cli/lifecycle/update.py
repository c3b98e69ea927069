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
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memos_cli.cube.cube import Cube, check_writable, rewrite, write_plaintext
from memos_cli.cube.verify import open_verified
from memos_cli.digest import sha256_file
from memos_cli.errors import EmptyCorpusError, UsageError
from memos_cli.lifecycle.pack import embed_memories
from memos_cli.memory import Memory, orphaned_derived
from memos_cli.sources import read_sources
from memos_cli.tiers.plaintext import check_embedder


@dataclass
class UpdateReport:
    """What an update did; ``revision`` is the cube's new revision."""

    path: str
    added: int = 0
    changed: int = 0
    removed: int = 0
    duplicates: int = 0
    embedded: int = 0
    revision: int = 1
    signed: bool = False
    #: the cube was signed and was written without a key: it is unsigned now
    signature_dropped: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _updatable(cube: Cube) -> None:
    check_writable(cube)
    cube.require_plaintext()
    other = [t for t in cube.manifest.tiers if t != "plaintext"]
    if other:
        raise UsageError(f"cube holds the {' and '.join(other)} tier, computed from its current "
                         "memories; update a cube with the plaintext tier only, then convert "
                         "it again", path=cube.path)


def _write(cube: Cube, memories: list[Memory], vectors: np.ndarray, key: str | Path | None,
           sources: list[dict[str, Any]] | None = None) -> int:
    """Rewrite the plaintext tier with ``memories``; returns the new revision. MemReader
    index rows are not carried over (the manifest's ``readers`` is recounted, spec §6.1):
    a context row holds its neighbours' text, which may have changed or gone."""
    with rewrite(cube, key=key) as (tmp, raw):
        shutil.rmtree(tmp / raw["index"]["path"], ignore_errors=True)
        (tmp / raw["files"]["memories"]["path"]).unlink(missing_ok=True)
        plain = write_plaintext(tmp, memories, vectors)
        raw["files"], raw["index"] = plain["files"], plain["index"]
        raw["counts"]["memories"] = len(memories)
        if sources:
            raw["provenance"]["sources"] = [*raw["provenance"]["sources"], *sources]
            raw["counts"]["sources"] = len(raw["provenance"]["sources"])
        raw["revision"] = revision = int(raw.get("revision", 1)) + 1
    return revision


def add(path: str | Path, paths: list[str | Path], *, embedder: Any, defaults: Any,
        key: str | Path | None = None) -> UpdateReport:
    """Add the memories of ``paths`` to the cube at ``path``; identical ones (content hash)
    are skipped, and one with an id already in the cube is a new version of it.

    Raises:
        SourceError, EmptyCorpusError: as ``pack``. UsageError: a cube with other tiers.
        EmbedderMismatchError: ``embedder`` did not build the cube's index.
    """
    cube = open_verified(path)
    _updatable(cube)
    check_embedder(cube, embedder)
    read = read_sources(list(paths), defaults)
    report_unreadable = [f"skipped unreadable {u}" for u in read.unreadable]
    old = cube.memories
    by_id = {m.id: i for i, m in enumerate(old)}
    hashes = {m.content_hash for m in old}
    report = UpdateReport(str(cube.path))
    report.notes += report_unreadable
    current = list(old)
    fresh: list[Memory] = []
    changed_ids: set[str] = set()
    provenance = []
    for res in read.results:
        kept = 0
        for m in res.memories:
            if m.content_hash in hashes:
                report.duplicates += 1
                continue
            hashes.add(m.content_hash)
            kept += 1
            if m.id in by_id:
                prev = current[by_id[m.id]]
                m = dataclasses.replace(m, version=prev.version + 1, extra={
                    **m.extra, "supersedes": {"content_hash": prev.content_hash,
                                              "version": prev.version}})
                current[by_id[m.id]] = m
                changed_ids.add(m.id)
                report.changed += 1
            else:
                by_id[m.id] = len(current)
                current.append(m)
                report.added += 1
            fresh.append(m)
        provenance.append({"path": res.path, "sha256": res.sha256, "size": res.size,
                           "format": res.format, "memories": kept})
    if not fresh:
        if report.duplicates:  # nothing written: the cube is as it was, signature too
            report.revision = cube.manifest.revision or 1
            report.signed = cube.signed
            report.notes.append("nothing new: every memory is already in the cube")
            return report
        raise EmptyCorpusError("no memories found in " + ", ".join(map(str, paths)))
    stale = orphaned_derived(current, changed_ids)
    if stale:
        current = [m for m in current if m.id not in stale]
        report.notes.append(f"{len(stale)} derived memories of changed memories removed")
    new_vecs = embed_memories(embedder, fresh)
    fresh_row = {m.id: n for n, m in enumerate(fresh)}
    kept_ids = [m.id for m in current if m.id not in fresh_row]
    stored = cube.index().vectors(kept_ids) if kept_ids else None
    row = {mid: n for n, mid in enumerate(kept_ids)}
    vectors = np.stack([new_vecs[fresh_row[m.id]] if m.id in fresh_row
                        else stored[row[m.id]] for m in current])  # type: ignore[index]
    report.embedded = len(fresh)
    was_signed = cube.signed
    report.revision = _write(cube, current, vectors, key, provenance)
    report.signed = key is not None
    report.signature_dropped = was_signed and key is None
    return report


def remove(path: str | Path, keep: Callable[[Memory], bool], *,
           key: str | Path | None = None) -> UpdateReport:
    """Remove the memories ``keep`` rejects; the others keep their stored vectors.

    Raises:
        UsageError: nothing matched, every memory would go, or a cube with other tiers.
    """
    cube = open_verified(path)
    _updatable(cube)
    stay = [m for m in cube.memories if keep(m)]
    stale = orphaned_derived(stay, set())  # derived from a removed memory: goes with it
    stay = [m for m in stay if m.id not in stale]
    gone = len(cube.memories) - len(stay)
    if gone == 0:
        raise UsageError("no memory matches; nothing removed", path=cube.path)
    if not stay:
        raise UsageError("that would remove every memory; a cube holds at least one",
                         path=cube.path)
    vectors = cube.index().vectors([m.id for m in stay])
    report = UpdateReport(str(cube.path), removed=gone, signed=key is not None,
                          signature_dropped=cube.signed and key is None)
    report.revision = _write(cube, stay, vectors, key)
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
