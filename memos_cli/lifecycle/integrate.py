"""Integrating new memories into a cube (spec §4.6): the part of ``memos add`` after its
sources are read, and what ``memos remember`` writes into a cube. Each new memory is decided
against the cube's current memories (:class:`~memos_cli.lifecycle.evolve.Ledger`); the
paragraphs of an edited source that changed supersede those they replace; the cube is
rewritten once, atomically, and re-signed with a key or left unsigned."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from memos_cli.cube.cube import Cube
from memos_cli.lifecycle.evolve import Ledger
from memos_cli.lifecycle.pack import embed_memories
from memos_cli.lifecycle.rewrite import UpdateReport, write_plaintext_tier
from memos_cli.lifecycle.supersede import Decision
from memos_cli.memory import Memory, orphaned_derived


def integrate(cube: Cube, incoming: list[Memory], *, embedder: Any,
              key: str | Path | None = None, supersede: bool = True, dry_run: bool = False,
              left: list[Memory] | None = None, provenance: list[dict[str, Any]] | None = None,
              report: UpdateReport | None = None) -> UpdateReport:
    """Write ``incoming`` (memories not in ``cube`` by content hash) into ``cube``.

    ``left``: memories of sources given again whose text left them; each is paired with the
    most similar new memory of its file and section (a source edit, rule ``source edit``) or
    removed. A memory whose id the cube holds with other content is its next version. Every
    other one is decided (duplicate, update, new) unless ``supersede`` is false. With
    ``dry_run`` nothing is written. Returns the report (``report`` filled in, if given).

    Raises:
        EmbedderMismatchError: not the cube's embedder (checked by the caller).
    """
    report = report or UpdateReport(str(cube.path))
    left = left or []
    provenance = provenance or []
    old = cube.memories
    new_vecs = embed_memories(embedder, incoming)
    old_vecs = cube.index().vectors([m.id for m in old]) if old else \
        np.zeros((0, new_vecs.shape[1]), np.float32)
    ledger = Ledger(old, old_vecs)
    ledger.prepare(incoming, new_vecs)
    pairs = _edits(left, incoming, old_vecs[[old.index(m) for m in left]] if left else None,
                   new_vecs)
    by_id = {m.id: m for m in old}
    vec_of = {m.id: v for m, v in zip(incoming, new_vecs, strict=True)}
    for m, v in zip(incoming, new_vecs, strict=True):
        if m.id in by_id and by_id[m.id].content_hash != m.content_hash:
            prev = ledger.memories[m.id]  # the same id with other content: a new version
            ledger.memories[m.id] = dataclasses.replace(
                m, version=prev.version + 1, extra={**m.extra, "supersedes": {
                    "content_hash": prev.content_hash, "version": prev.version}},
                supersedes=prev.supersedes, supersession=prev.supersession,
                valid_to=prev.valid_to, superseded_by=prev.superseded_by)
            ledger.changed.add(m.id)
            report.changed += 1
            continue
        if m.id in pairs:
            d = Decision("update", pairs[m.id][0], "source edit", pairs[m.id][1],
                         {"from": [], "to": []})
            ledger.apply(m, v, d)
        elif supersede:
            ledger.offer(m, v)
        else:
            ledger.apply(m, v, Decision("independent", rule="off"))
    matched = {t for t, _ in pairs.values()}
    ledger.drop(m.id for m in left if m.id not in matched)
    report.removed = sum(1 for m in left if m.id not in matched)
    counts = ledger.counts
    report.added = counts.independent
    report.updates, report.duplicates = counts.updates, report.duplicates + counts.duplicates
    report.decisions = [o.to_dict() for o in counts.outcomes if o.decision.kind != "independent"]
    named = {i for d in report.decisions for i in (d["id"], d["target"])}
    texts = {m.id: m.render() for m in incoming} | {m.id: m.render() for m in old}
    report.texts = {i: texts[i] for i in named if i in texts}
    report.embedded = len(incoming)
    final = [ledger.memories[m.id] for m in old if m.id in ledger.memories] + \
        [ledger.memories[i] for i in ledger.written if i not in by_id]
    changed_ids = {m.id for m in incoming if m.id in by_id} | \
        {m.id for m in left if m.id not in matched}
    stale = orphaned_derived(final, changed_ids)
    if stale:
        final = [m for m in final if m.id not in stale]
        report.notes.append(f"{len(stale)} derived memories of changed memories removed")
    if dry_run:
        report.revision = cube.manifest.revision or 1
        report.signed = cube.signed
        report.dry_run = True
        return report
    kept_ids = [m.id for m in final if m.id not in vec_of]
    stored = dict(zip(kept_ids, cube.index().vectors(kept_ids), strict=True)) \
        if kept_ids else {}
    vectors = np.stack([vec_of[m.id] if m.id in vec_of else stored[m.id] for m in final])
    was_signed = cube.signed
    report.revision = write_plaintext_tier(cube, final, vectors, key, provenance)
    report.signed = key is not None
    report.signature_dropped = was_signed and key is None
    return report




def _edits(left: list[Memory], incoming: list[Memory], left_vecs: np.ndarray | None,
           new_vecs: np.ndarray) -> dict[str, tuple[str, float]]:
    """Which new memory of an edited source replaces which memory whose text left it:
    ``{new id: (old id, cosine)}``. Pairs are taken most similar first, within the same
    file and section, at a cosine of at least :data:`EDIT_SIMILARITY`."""
    if not left or left_vecs is None:
        return {}
    cands = []
    for j, n in enumerate(incoming):
        for i, o in enumerate(left):
            if (o.source_file, o.section, o.owner) == (n.source_file, n.section, n.owner):
                cands.append((float(left_vecs[i] @ new_vecs[j]), n.id, o.id))
    out: dict[str, tuple[str, float]] = {}
    used: set[str] = set()
    for sim, nid, oid in sorted(cands, reverse=True):
        if sim >= EDIT_SIMILARITY and nid not in out and oid not in used:
            out[nid] = (oid, sim)
            used.add(oid)
    return out


#: The least cosine similarity at which an edited paragraph is taken for a new version of
#: the paragraph it replaces (below it, the old one is removed and the new one added).
EDIT_SIMILARITY = 0.5


