"""``dump`` (MemDumper): export what a user may read from a cube, as JSONL or as a new cube.

The JSONL export is lossless for the plaintext tier: one ``Memory.to_dict()`` object a line
(spec §8.2 reads it back field for field, ``memos import`` gives the same memories). Permission
metadata (owner, visibility, readers, sensitivity) travels with every memory.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from memos_cli.cube import Cube, CubeSpec, write_cube
from memos_cli.cube.layout import atomic_write_bytes
from memos_cli.digest import canonical_json, sha256_bytes, sha256_file
from memos_cli.errors import CubeExistsError, UsageError
from memos_cli.governance.policy import can_read
from memos_cli.governance.redact import Redactor
from memos_cli.lifecycle.pack import embed_memories
from memos_cli.memory import Memory, content_hash, derived_reader, orphaned_derived, parse_time
from memos_cli.sources.markdown_export import to_markdown
from memos_cli.validity import detach

FILTER_KEYS = ("owner", "tag", "type", "since", "until", "source")


@dataclass(frozen=True)
class Filter:
    """``owner=``, ``tag=``, ``type=`` (semantic type), ``source=`` (the source file as the
    cube records it, ``notes/db.md``; a directory, ``notes/``, takes every file below it),
    ``since=``/``until=`` (ISO 8601, on ``created_at``); all given conditions must hold."""

    owner: str | None = None
    tag: str | None = None
    type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    source: str | None = None

    @classmethod
    def parse(cls, text: str | None) -> Filter:
        """Parse ``key=value,key=value``. Raises ``UsageError``."""
        if not text:
            return cls()
        values: dict[str, Any] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in FILTER_KEYS or not value.strip():
                raise UsageError(f"--filter {part!r} is not one of "
                                 f"{', '.join(k + '=VALUE' for k in FILTER_KEYS)}")
            if key in ("since", "until"):
                try:
                    values[key] = parse_time(value)
                except ValueError as e:
                    raise UsageError(f"--filter {key}={value!r} is not an ISO 8601 time") from e
            else:
                values[key] = value.strip()
        return cls(**values)

    def __call__(self, m: Memory) -> bool:
        return ((self.owner is None or m.owner == self.owner)
                and (self.tag is None or self.tag in m.tags)
                and (self.type is None or m.semantic_type == self.type)
                and (self.since is None or m.created_at >= self.since)
                and (self.until is None or m.created_at < self.until)
                and (self.source is None or m.source_file == self.source
                     or (self.source.endswith("/") and
                         (m.source_file or "").startswith(self.source))))


def select(cube: Cube | Source, user: str, keep: Filter) -> list[Memory]:
    """The memories of ``cube`` that ``user`` may read and ``keep`` passes, in file order."""
    return [m for m in cube.memories if can_read(m, user) and keep(m)]


@dataclass
class Source:
    """What a dump reads: a cube or the vault. ``vectors(ids)`` gives the index vectors
    (``[n, dim] float32``) of memories; ``record`` is the provenance entry of the source."""

    name: str
    parents: list[str]
    memories: list[Memory]
    embedding: dict[str, Any]
    vectors: Callable[[list[str]], np.ndarray]
    record: dict[str, Any]


def cube_source(cube: Cube) -> Source:
    cube.require_plaintext()
    return Source(cube.manifest.name, [cube.manifest.cube_id], cube.memories,
                  dict(cube.manifest.embedding or {}), cube.index().vectors,
                  {"path": str(cube.path), "sha256": sha256_file(cube.memories_path),
                   "size": cube.memories_path.stat().st_size, "format": "memcube"})


def vault_source(vault: Any) -> Source:
    """The current memories of every cube installed in ``vault`` (``memos_cli.vault.Vault``),
    at the version read; provenance names that version and the memories' content digest."""
    state = vault.state()
    if not state.memories:
        raise UsageError("the vault holds no memories", path=vault.path)
    rows = {m.id: i for i, m in enumerate(state.memories)}
    records = canonical_json([m.to_dict() for m in state.memories])  # the content digest's
    name = str(vault.path).rstrip("/").rsplit("/", 1)[-1]
    return Source(f"vault {name}", sorted(state.cubes), state.memories,
                  dict(state.embedding or {}), lambda ids: state.vectors[[rows[i] for i in ids]],
                  {"path": f"{vault.path}@{vault.version}", "sha256": sha256_bytes(records),
                   "size": len(records), "format": "vault"})


def to_jsonl(memories: list[Memory]) -> bytes:
    """One JSON object per line, ``Memory.to_dict()``, UTF-8, keys in field order."""
    return "".join(json.dumps(m.to_dict(), ensure_ascii=False) + "\n"
                   for m in memories).encode("utf-8")


@dataclass
class DumpReport:
    path: str
    format: str
    memories: int
    withheld: int
    signed: bool
    redaction: dict[str, Any] | None = None
    access_log_records: int = 0
    memory_ids: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "memories": self.memories,
                "withheld": self.withheld, "signed": self.signed,
                "redaction": self.redaction, "access_log_records": self.access_log_records}


#: The text fields of a memory that can hold personal data (besides ``extra`` and ``tags``).
#: Free text: personal data is detected in it.
REDACTED_FIELDS = ("content", "speaker", "section")
#: Provenance, not free text: only values found in free text are replaced here (spec §8.6).
PROVENANCE_FIELDS = ("source_file", "conversation_id", "session_id")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def learn_memory(m: Memory, redactor: Any) -> None:
    """Let ``redactor`` learn the personal data in every text field of ``m``."""
    for text in [*(getattr(m, f) for f in REDACTED_FIELDS), *m.tags, *_strings(m.extra)]:
        redactor.learn(text)


def redact_memory(m: Memory, redactor: Any) -> Memory:
    """``m`` with personal data replaced in its content, speaker, section, tags and the string
    values of ``extra``, and the values found there replaced in its source file, conversation
    and session ids too (nothing is detected in those: a path is not free text); the content
    hash is recomputed, the id kept."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return redactor(value)
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    new = {f: redactor(getattr(m, f)) for f in REDACTED_FIELDS}
    new |= {f: redactor(getattr(m, f), detect=False) for f in PROVENANCE_FIELDS}
    # the values a supersession changed are words of the content, folded: not redacted
    # reliably, so left out (the rule and the score stay)
    decision = {k: v for k, v in m.supersession.items() if k not in ("from", "to")} \
        if m.supersession else None
    return dataclasses.replace(m, **new, tags=tuple(redactor(t) or t for t in m.tags),
                               extra=clean(m.extra), supersession=decision,
                               content_hash=content_hash(new["content"], new["speaker"],
                                                         m.event_time))


FORMATS = ("jsonl", "markdown", "memcube")


def dump(cube: Cube | Source, out: str | Path, *, user: str, keep: Filter | None = None,
         fmt: str = "jsonl", key: str | Path | None = None, force: bool = False,
         now: datetime, redact: tuple[str, ...] = (), embedder: Any = None,
         access_log: list[dict[str, Any]] | None = None,
         usage: dict[str, dict[str, Any]] | None = None, keep_terms: tuple[str, ...] = (),
         redact_terms: tuple[str, ...] = (), derived: bool = True) -> DumpReport:
    """Write what ``user`` may read of ``cube`` (a cube or a :class:`Source`) and ``keep``
    selects to ``out``, atomically.

    ``fmt``: ``jsonl`` (one file), ``markdown`` (one file, :mod:`memos_cli.sources.markdown_export`;
    both lossless) or ``memcube`` (a new cube whose provenance names the source cube as
    parent, with the source's index vectors reused; signed with ``key``).
    ``redact``: ``--redact`` type names (``memos_cli.governance.redact.TYPES``); the
    memcube's index is then rebuilt from the redacted text with ``embedder``, and its
    provenance records the types and counts (never the values).
    ``access_log``: access-log records (vault ``audit.jsonl``); those naming an exported
    memory are written beside the export (``access_log.jsonl`` inside a memcube,
    ``OUT.access.jsonl`` beside a file), reduced to the exported ids. Redacted exports keep
    only time, user, operation and ids.
    ``derived``: also export derived memories (spec §4.5, marked by ``origin = inference``
    and ``extra.reader``); one whose source is not exported is left out either way. A
    memcube export's index has no MemReader rows (``memos reindex --reader`` adds them).
    ``usage``: memory id -> usage indicators (``Indicators.to_dict()``, spec §13.1); those of
    exported memories are written as ``usage.jsonl`` inside a memcube or ``OUT.usage.jsonl``
    beside a file, one object a line.

    Raises:
        UsageError: unknown format, an output location that cannot be written
            (:func:`check_target`), or nothing the user may read.
        CubeExistsError: ``out`` exists and ``force`` is false.
    """
    target = check_target(out, fmt, force=force)
    src = cube if isinstance(cube, Source) else cube_source(cube)
    chosen = select(src, user, keep or Filter())
    if not derived:  # --no-derived: the user's own memories only
        chosen = [m for m in chosen if derived_reader(m) is None]
    stale = orphaned_derived(chosen)  # derived from a memory left out: it would leak it
    chosen = detach([m for m in chosen if m.id not in stale])  # links to what is left out
    withheld = len(src.memories) - len(chosen)
    if not chosen:
        raise UsageError(f"user {user!r} may read none of the selected memories",
                         path=src.record["path"])
    redaction: dict[str, Any] | None = None
    if redact:
        if fmt == "memcube" and embedder is None:
            raise UsageError("a redacted memcube export needs the embedder to rebuild its index")
        redactor = Redactor(tuple(redact), keep=keep_terms, deny=redact_terms)
        for m in chosen:  # first learn every value found, then redact it wherever it occurs
            learn_memory(m, redactor)
        chosen = [redact_memory(m, redactor) for m in chosen]
        redaction = {"types": list(redact), "counts": dict(sorted(redactor.counts.items()))}
    log = exported_log(access_log or [], {m.id for m in chosen}, redacted=bool(redact))
    log_bytes = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in log).encode("utf-8")
    used = [usage[m.id] for m in chosen if usage and m.id in usage]
    usage_bytes = "".join(json.dumps(u, ensure_ascii=False) + "\n" for u in used).encode()
    if fmt in ("jsonl", "markdown"):
        if fmt == "jsonl":
            data = to_jsonl(chosen)
        else:
            data = to_markdown(chosen, title=f"Export of {src.name} for {user}")
        if log:
            atomic_write_bytes(target.with_name(target.name + ".access.jsonl"), log_bytes)
        if usage is not None:
            atomic_write_bytes(target.with_name(target.name + ".usage.jsonl"), usage_bytes)
        atomic_write_bytes(target, data)
    else:
        if redact:
            vectors = embed_memories(embedder, chosen)
        else:
            vectors = src.vectors([m.id for m in chosen])
        spec = CubeSpec(
            name=target.name.removesuffix(".memcube"),
            description=f"export of {src.name} for {user}",
            created_at=now, embedding=src.embedding,
            sources=[{**src.record, "memories": len(chosen)}],
            pack_options={"dump": {"user": user, "filter": repr(keep or Filter()),
                                   "withheld": withheld, "redaction": redaction,
                                   "access_log_records": len(log)}},
            parents=src.parents)
        extra = {**({ACCESS_LOG: log_bytes} if log else {}),
                 **({USAGE: usage_bytes} if usage is not None else {})}
        write_cube(target, chosen, vectors, spec, key=key, force=force,
                   extra_files=extra or None)
    return DumpReport(str(target), fmt, len(chosen), withheld, fmt == "memcube" and bool(key),
                      redaction, len(log), [m.id for m in chosen])


def check_target(out: str | Path, fmt: str, *, force: bool) -> Path:
    """``out`` as a path, when an export in ``fmt`` can be written there: checked before any
    work, so a 15-second redaction does not end in an error about the output. A file export
    needs an existing directory and a target that is not a directory; a memcube export makes
    missing parent directories, as ``pack`` does.

    Raises:
        UsageError: an unknown format, a missing or non-directory parent, a target that is a
            directory.
        CubeExistsError: ``out`` exists and ``force`` is false.
    """
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    target = Path(out)
    if fmt != "memcube":
        parent = target.parent
        if not parent.is_dir():
            raise UsageError(f"cannot write {target.name}: the directory {parent} does not "
                             "exist" if not parent.exists() else
                             f"cannot write {target.name}: {parent} is not a directory",
                             path=target)
        if target.is_dir():
            raise UsageError("is a directory; name the file to write (OUT.jsonl or OUT.md)",
                             path=target)
    if target.exists() and not force:
        raise CubeExistsError("already exists (use --force to replace it)", path=target)
    return target


ACCESS_LOG = "access_log.jsonl"
USAGE = "usage.jsonl"


def exported_log(records: list[dict[str, Any]], ids: set[str], *, redacted: bool
                 ) -> list[dict[str, Any]]:
    """The access-log records that name an exported memory, with ``memory_ids`` cut down to the
    exported ones; a redacted export keeps only ``time``, ``user``, ``op``, ``cube_id`` and
    ``memory_ids`` (queries and other details could hold what was redacted)."""
    out = []
    for r in records:
        mine = [i for i in r.get("memory_ids", []) if i in ids]
        if not mine:
            continue
        rec = {**r, "memory_ids": mine}
        if redacted:
            rec = {k: rec.get(k) for k in ("time", "user", "op", "cube_id", "memory_ids")}
        out.append(rec)
    return out

