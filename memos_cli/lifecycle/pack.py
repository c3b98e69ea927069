"""``pack`` and ``rebuild_index``: sources -> memories -> embedded, signed cube.

The pipelines behind ``memos pack`` and ``memos reindex``; the only place where the embedder
meets the cube format.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from memos_cli.cube import Cube, CubeSpec, open_cube, reindex, write_cube
from memos_cli.cube.index import ReaderRows, index_text
from memos_cli.cube.manifest import read_manifest
from memos_cli.cube.signature import check_private_key
from memos_cli.errors import CubeExistsError, EmptyCorpusError, SourceError
from memos_cli.lifecycle.evolve import evolve
from memos_cli.memory import Memory, derived_reader, orphaned_derived
from memos_cli.models.embedder import Embedder
from memos_cli.readers import parse_names, run_readers
from memos_cli.sources import Defaults, read_sources
from memos_cli.sources.text import MAX_CHARS
from memos_cli.validity import link_problems, summary


@dataclass
class PackReport:
    """What a pack did. ``seconds`` is wall time; ``embed_s`` the part spent embedding."""

    path: str
    cube_id: str
    memories: int
    duplicates: int
    sources: list[dict[str, Any]]
    skipped: list[str]
    notes: list[str]
    signed: bool
    seconds: float
    embed_s: float
    extra: dict[str, Any] = field(default_factory=dict)
    #: the manifest records of the MemReaders run (spec §6.1)
    readers: list[dict[str, Any]] = field(default_factory=list)
    #: files left out as unreadable (``--skip-unreadable``): "path: why"
    unreadable: list[str] = field(default_factory=list)
    #: supersession decisions (spec §4.6): ``Counts`` of :mod:`memos_cli.lifecycle.evolve`,
    #: or ``None`` when it was turned off
    evolution: Any = None
    #: the text of the memories (``dry_run`` only, for showing decisions)
    texts: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "cube_id": self.cube_id, "memories": self.memories,
                "duplicates_dropped": self.duplicates, "sources": self.sources,
                "skipped_files": self.skipped, "unreadable_files": self.unreadable,
                "notes": self.notes, "signed": self.signed,
                "seconds": round(self.seconds, 3), "embed_s": round(self.embed_s, 3),
                "memories_per_s": round(self.memories / self.seconds, 1) if self.seconds else 0,
                **({"readers": [{k: v for k, v in r.items() if k != "model"}
                                | {"model": (r["model"] or {}).get("name")}
                                for r in self.readers]} if self.readers else {}),
                **({"supersession": self.evolution.to_dict(decisions=True)}
                   if self.evolution is not None else {})}


def embed_texts(embedder: Embedder, texts: list[str], stage: str,
                progress: Callable[[str, int, int], None] | None = None) -> np.ndarray:
    """Embed ``texts``: ``[n, dim] float32`` unit vectors (``[0, dim]`` for none);
    ``progress(stage, done, total)`` after each batch."""
    if not texts:
        return np.zeros((0, embedder.dimension), np.float32)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(stage, done, len(texts))

    return embedder.encode(texts, progress=step)


def embed_memories(embedder: Embedder, memories: list[Memory],
                   progress: Callable[[str, int, int], None] | None = None) -> np.ndarray:
    """Embed :func:`~memos_cli.cube.index.index_text` of each memory: ``[n, dim] float32``
    unit vectors. ``progress("embedding", done, total)`` is called after each batch."""
    return embed_texts(embedder, [index_text(m) for m in memories], "embedding", progress)


def embed_rows(embedder: Embedder, rows: ReaderRows,
               progress: Callable[[str, int, int], None] | None = None) -> ReaderRows:
    """Embed the texts of reader rows (``rows.vectors`` set; returned)."""
    rows.vectors = embed_texts(embedder, rows.texts, "embedding reader rows", progress)
    return rows


#: ``pack(readers=BY_SOURCE)``: the MemReaders that pay off with no model, chosen by source:
#: ``context`` when every source is a conversation (held-apart LoCoMo 42 and 43: evidence
#: recall@10 0.667 -> 0.727, bench/readers.py), none for documents and mixed inputs.
BY_SOURCE = "by-source"
#: The source formats (spec §8) that are conversations.
CONVERSATIONS = ("chat", "locomo", "letta")


@dataclass
class ReaderPlan:
    """Which MemReaders a pack or reindex runs (``memos_cli.readers``): their ``names``, the
    chat ``model`` to load (``None``: the default) or an already loaded ``chat``, the
    ``budget`` (``readers.Budget``) and per-reader ``options``."""

    names: list[str]
    model: str | None = None
    chat: Any = None
    budget: Any = None
    options: dict[str, Any] = field(default_factory=dict)

    def run(self, memories: list[Memory], embedder: Embedder | None = None,
            progress: Callable[[str, int, int], None] | None = None) -> Any:
        return run_readers(self.names, memories, model=self.model, chat=self.chat,
                           budget=self.budget, progress=progress, options=self.options,
                           embedder=embedder)


def rebuild_index(path: str | Path, embedder: Embedder, *, key: str | Path | None = None,
                  progress: Callable[[str, int, int], None] | None = None,
                  readers: ReaderPlan | None = None) -> Cube:
    """Re-embed a cube's memories with ``embedder`` and rebuild its index in place, atomically.

    With ``readers``, those MemReaders run over the cube's own memories first: their rows
    replace the index rows of earlier reader runs, and a ``facts`` run replaces the derived
    memories of an earlier one. Without, the rows of earlier runs are dropped and derived
    memories kept. Without ``key`` an existing signature is removed (the cube shows as
    unsigned); with it the cube is re-signed. Returns the reopened cube.
    """
    if key is not None:
        check_private_key(Path(key))
    cube = open_cube(path)
    if readers is None or not readers.names:
        vectors = embed_memories(embedder, cube.memories, progress)
        return reindex(cube.path, vectors, embedder.describe(), key=key)

    names = parse_names(readers.names)
    own = [m for m in cube.memories if derived_reader(m) is None]
    run = readers.run(own, embedder, progress)
    old = [m for m in cube.memories if derived_reader(m) is not None
           and not (derived_reader(m) == "facts" and "facts" in names)]
    mems = own + old + run.memories
    vectors = embed_memories(embedder, mems, progress)
    rows = embed_rows(embedder, run.rows(), progress)
    return reindex(cube.path, vectors, embedder.describe(), key=key, reader_rows=rows,
                   readers=run.records(), memories=mems)


def pack(
    paths: list[str | Path],
    output: str | Path,
    *,
    embedder: Embedder,
    defaults: Defaults,
    name: str | None = None,
    description: str = "",
    key: str | Path | None = None,
    force: bool = False,
    cube_id: str | None = None,
    created_at: datetime | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    readers: ReaderPlan | str | None = None,
    encode: Callable[[list[str]], np.ndarray] | None = None,
    supersede: bool = True,
    dry_run: bool = False,
) -> PackReport:
    """Read ``paths``, deduplicate by content hash, embed, and write the cube at ``output``.

    ``encode`` embeds the memories' index texts instead of ``embedder`` (``memos pack
    --ray``: :func:`memos_cli.batch.embed.embed_on_ray`); it must be the same model, as the
    manifest describes ``embedder``.

    With ``supersede`` (the default), each memory is decided against the earlier ones of
    its owner in valid-time order (:func:`memos_cli.lifecycle.evolve.evolve`, spec §4.6):
    restatements are dropped, updates are linked to what they supersede. With ``dry_run``
    everything but the writing is done (the report's ``cube_id`` is empty).

    ``progress(stage, done, total)`` is called while reading and embedding. ``created_at``
    defaults to ``defaults.now``. ``readers`` run over the memories before they are indexed
    (``memos_cli.readers``). Nothing is written unless every step succeeds.

    Raises:
        SourceError, EmptyCorpusError: bad or empty input (names the file).
        CubeExistsError: ``output`` exists and ``force`` is false (checked first).
        KeyFileError: the signing key is unusable (checked before embedding).
        UsageError: an unknown reader (checked before reading the sources).
        ModelNotFoundError, ReaderError: a model reader's model cannot load or generate.
    """
    t0 = time.perf_counter()
    out = Path(output)
    if out.exists() and not force:
        raise CubeExistsError("already exists (use --force to replace it)", path=out)
    if key is not None:
        check_private_key(Path(key))
    if isinstance(readers, ReaderPlan):
        readers.names = parse_names(readers.names)
    read = read_sources(list(paths), defaults)
    if readers == BY_SOURCE:
        readers = ReaderPlan(["context"]) if read.results and all(
            r.format in CONVERSATIONS for r in read.results) else None
    kept: list[Memory] = []
    seen_hash: set[str] = set()
    seen_id: dict[str, str] = {}
    duplicates = 0
    provenance = []
    notes = []
    for res in read.results:
        count = 0
        for m in res.memories:
            if m.content_hash in seen_hash:
                duplicates += 1
                continue
            if m.id in seen_id:
                raise SourceError(f"memory id {m.id} is used twice with different content "
                                  f"(first in {seen_id[m.id]})", path=res.path)
            seen_hash.add(m.content_hash)
            seen_id[m.id] = res.path
            kept.append(m)
            count += 1
        provenance.append({"path": res.path, "sha256": res.sha256, "size": res.size,
                           "format": res.format, "memories": count})
        notes += [f"{res.path}: {n}" for n in res.notes]
    if not kept:
        where = ", ".join(str(p) for p in paths)
        raise EmptyCorpusError(f"no memories found in {where}"
                               + (f" ({len(read.skipped)} files of other types skipped)"
                                  if read.skipped else "")
                               + (f" ({len(read.unreadable)} unreadable files skipped)"
                                  if read.unreadable else ""))
    run = readers.run(kept, embedder, progress) if isinstance(readers, ReaderPlan) and \
        readers.names else None
    rows = None
    if run is not None:
        kept += run.memories
    t_embed = time.perf_counter()
    vectors = embed_memories(embedder, kept, progress) if encode is None else \
        np.asarray(encode([index_text(m) for m in kept]), np.float32)
    if run is not None:
        rows = embed_rows(embedder, run.rows(), progress)
    embed_s = time.perf_counter() - t_embed
    evolution = None
    records = run.records() if run is not None else []
    if supersede:
        kept, vectors, evolution = _evolve(kept, vectors)
        rows, records = _follow(rows, records, kept)
    if problems := link_problems(kept):  # links given by the sources (an import, a dump)
        raise SourceError(summary(problems), path=", ".join(str(p) for p in paths))
    spec = CubeSpec(
        name=name or out.name.removesuffix(".memcube"),
        description=description,
        created_at=created_at or defaults.now,
        embedding=embedder.describe(),
        sources=provenance,
        pack_options={
            "chunk_max_chars": MAX_CHARS,
            "dedupe": "content_hash",
            "duplicates_dropped": duplicates,
            "owner": defaults.owner,
            "visibility": defaults.visibility,
            "readers": list(defaults.readers),
            "ttl_s": None if defaults.ttl is None else defaults.ttl.total_seconds(),
            "tags": list(defaults.tags),
            "supersession": None if evolution is None else
            {k: v for k, v in evolution.to_dict().items()},
        },
        cube_id=cube_id,  # None: derived from the content (spec §5)
        readers=records,
        reader_rows=rows,
    )
    if dry_run:
        return PackReport(str(out), "", len(kept), duplicates, provenance, read.skipped, notes,
                          False, time.perf_counter() - t0, embed_s, unreadable=read.unreadable,
                          evolution=evolution, texts={m.id: m.render() for m in kept})
    write_cube(out, kept, vectors, spec, key=key, force=force)
    written = read_manifest(out).cube_id
    return PackReport(str(out), written, len(kept), duplicates, provenance,
                      read.skipped, notes, key is not None, time.perf_counter() - t0, embed_s,
                      readers=records, unreadable=read.unreadable, evolution=evolution)


def _follow(rows: ReaderRows | None, records: list[dict[str, Any]], kept: list[Memory]
            ) -> tuple[ReaderRows | None, list[dict[str, Any]]]:
    """The reader rows and the readers' records after supersession: the rows of a memory
    dropped as a restatement go with it (a row must find a memory of the cube, spec §6.1),
    and each record counts what is left of its rows and derived memories."""
    ids = {m.id for m in kept}
    if rows is not None and any(i not in ids for i in rows.ids):
        at = [n for n, i in enumerate(rows.ids) if i in ids]
        rows = ReaderRows([rows.ids[n] for n in at], [rows.kinds[n] for n in at],
                          [rows.texts[n] for n in at],
                          None if rows.vectors is None else rows.vectors[at])
    counts = Counter(rows.kinds if rows is not None else [])
    derived = Counter(derived_reader(m) for m in kept)
    return rows, [{**r, "index_rows": counts.get(r["name"], 0),
                   "derived_memories": derived.get(r["name"], 0)} for r in records]


def _evolve(memories: list[Memory], vectors: np.ndarray) -> tuple[list[Memory], np.ndarray,
                                                                   Any]:
    """Supersession over the user's own memories of a pack; derived memories follow their
    sources (those of a dropped restatement go with it)."""
    own = [i for i, m in enumerate(memories) if derived_reader(m) is None]
    every = len(own) == len(memories)  # a pack of 200,000 lines: no copies of the vectors
    kept, linked, counts = evolve(memories if every else [memories[i] for i in own],
                                  vectors if every else vectors[own])
    out = {memories[own[j]].id: (m, own[j]) for j, m in zip(kept, linked, strict=True)}
    rows = [(m, i) for i, m in enumerate(memories) if derived_reader(m) is not None]
    mems = [m for m, _ in out.values()] + [m for m, _ in rows]
    stale = orphaned_derived(mems)
    chosen = list(out.values()) + [(m, i) for m, i in rows if m.id not in stale]
    chosen.sort(key=lambda x: x[1])  # input order
    if len(chosen) == len(memories):
        return [m for m, _ in chosen], vectors, counts
    return [m for m, _ in chosen], vectors[[i for _, i in chosen]], counts
