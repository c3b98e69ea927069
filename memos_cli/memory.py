"""The memory record: one row of ``memories.arrow`` (spec/memcube.md §4).

A ``Memory`` carries the MemCube metadata of the MemOS paper (arXiv 2507.03724, §4.1):
descriptive identifiers (id, times, origin, semantic type, source reference), governance
attributes (owner, visibility, readers, expiry, priority, sensitivity) and a version chain, plus a
content hash that fingerprints what the memory says.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from memos_cli.digest import canonical_json, sha256_bytes
from memos_cli.errors import UsageError
from memos_cli.principal import check_principal

ORIGINS = ("user_input", "file", "conversation", "inference", "import")
SEMANTIC_TYPES = ("fact", "preference", "event", "dialog_turn", "task_prompt", "document_chunk")
VISIBILITIES = ("private", "shared", "public")
#: Longest memory content, in Unicode code points (spec §4.1): a memory is a fact, a turn or a
#: paragraph; longer text belongs in several memories.
MAX_CONTENT_CHARS = 1 << 20
INT32 = 1 << 31

TIME_FIELDS = ("created_at", "updated_at", "event_time", "expires_at", "valid_to")
#: The columns format 1.7 added (spec §4.6); null in every memory of an older cube.
VALIDITY_FIELDS = ("valid_to", "supersedes", "superseded_by", "supersession")

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
#: Namespace of the UUIDv5 ids memos derives from content hashes (spec §4.2).
MEMORY_NAMESPACE = uuid.UUID("6f1c7a52-3d0e-5b8e-9a51-6d656d637562")


def utc(dt: datetime) -> datetime:
    """Return ``dt`` as an aware UTC datetime truncated to microseconds (naive means UTC)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def format_time(dt: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix and microseconds, or ``None``."""
    if dt is None:
        return None
    return utc(dt).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    """Parse ISO 8601 (``Z`` or an offset; naive means UTC). Raises ``ValueError``."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    return utc(datetime.fromisoformat(text))


def content_hash(content: str, speaker: str | None, event_time: datetime | None) -> str:
    """Fingerprint of what a memory says: ``sha256`` over canonical JSON (spec §4.3).

    The hashed object is ``{"content": ..., "event_time": ..., "speaker": ...}``: the same
    sentence said by someone else or at another time is another memory; governance and
    provenance fields do not change a memory's identity.
    """
    return sha256_bytes(
        canonical_json(
            {"content": content, "speaker": speaker, "event_time": format_time(event_time)}
        )
    )


def derived_from(memory: Memory) -> tuple[str, ...]:
    """The ids of the memories a MemReader derived ``memory`` from (spec §4.5): its
    ``extra["derived_from"]`` when ``origin`` is ``inference`` and ``extra["reader"]`` names
    the reader; ``()`` for every other memory."""
    if derived_reader(memory) is None:
        return ()
    ids = memory.extra.get("derived_from")
    return tuple(str(i) for i in ids) if isinstance(ids, list) else ()


def derived_reader(memory: Memory) -> str | None:
    """The name of the MemReader that wrote ``memory`` (``extra["reader"]`` of an
    ``inference`` memory with a ``derived_from`` list), or ``None`` for a memory of the
    user's own."""
    if memory.origin != "inference" or not isinstance(memory.extra.get("derived_from"), list):
        return None
    name = memory.extra.get("reader")
    return name if isinstance(name, str) else None


def orphaned_derived(memories: list[Memory], changed: Collection[str] = ()) -> set[str]:
    """Ids of derived memories whose sources are not all in ``memories`` or are in
    ``changed``: what they say came from text that is gone (a removal, a filtered export)."""
    ids = {m.id for m in memories}
    return {m.id for m in memories if (src := derived_from(m))
            and any(s not in ids or s in changed for s in src)}


def derived_id(chash: str) -> str:
    """The UUIDv5 id memos gives a memory that has none: ``uuid5(MEMORY_NAMESPACE, chash)``."""
    return str(uuid.uuid5(MEMORY_NAMESPACE, chash))


def _principal_problems(owner: str | None, readers: tuple[str, ...]) -> list[str]:
    """Owner and reader entries that break the policy model (spec §14): a ``role:`` or
    ``user/persona`` entry must be names; no entry may hold control characters. Plain owners
    imported from other systems (``John Doe``) are kept as they are."""
    out = []
    for what, entry in [("owner", owner), *(("reader", r) for r in readers)]:
        if entry is None:
            continue
        if any(ord(c) < 32 or ord(c) == 127 for c in entry):
            out.append(f"{what} {entry!r} holds a control character")
        elif "/" in entry or entry.startswith("role:"):
            try:
                check_principal(entry)
            except UsageError as e:
                out.append(str(e))
    return out


@dataclass(frozen=True, kw_only=True, slots=True)
class Memory:
    """One memory. Times are aware UTC datetimes; lists are sorted-free but never ``None``.

    Build one with :meth:`create`, which fills ``content_hash`` and ``id``.
    """

    id: str
    content: str
    content_hash: str
    created_at: datetime
    updated_at: datetime
    origin: str = "file"
    semantic_type: str = "document_chunk"
    # source reference
    source_file: str | None = None
    line_start: int | None = None
    line_end: int | None = None
    section: str | None = None
    conversation_id: str | None = None
    session_id: str | None = None
    turn_id: str | None = None
    speaker: str | None = None
    event_time: datetime | None = None
    # governance
    owner: str | None = None
    visibility: str = "private"
    readers: tuple[str, ...] = ()
    expires_at: datetime | None = None
    priority: int = 0
    sensitivity: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    # version chain
    version: int = 1
    parent_id: str | None = None
    # fields of the source that have no column (JSON object)
    extra: dict[str, Any] = field(default_factory=dict)
    # validity (format 1.7, spec §4.6): when this memory stopped being current, and why
    valid_to: datetime | None = None
    supersedes: str | None = None
    superseded_by: str | None = None
    #: the decision that made this memory supersede ``supersedes``: ``{"rule", ...}``
    supersession: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in TIME_FIELDS:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, utc(value))
        problems = []
        if len(self.content) > MAX_CONTENT_CHARS:
            problems.append(f"content is {len(self.content)} characters, over the "
                            f"{MAX_CONTENT_CHARS} character limit (split it into several "
                            "memories)")
        elif not self.content.strip():
            problems.append("content is empty")
        if self.origin not in ORIGINS:
            problems.append(f"origin {self.origin!r} is not one of {', '.join(ORIGINS)}")
        if self.semantic_type not in SEMANTIC_TYPES:
            problems.append(
                f"semantic_type {self.semantic_type!r} is not one of {', '.join(SEMANTIC_TYPES)}"
            )
        if self.visibility not in VISIBILITIES:
            problems.append(
                f"visibility {self.visibility!r} is not one of {', '.join(VISIBILITIES)}"
            )
        for name in ("line_start", "line_end", "priority", "version"):
            value = getattr(self, name)
            if value is not None and not -INT32 <= value < INT32:
                problems.append(f"{name} {value} is outside the 32-bit range of its column")
        if self.version < 1:
            problems.append(f"version {self.version} is below 1")
        if (self.line_start is None) != (self.line_end is None) or (
            self.line_start is not None
            and self.line_end is not None
            and not 1 <= self.line_start <= self.line_end
        ):
            problems.append(f"line range {self.line_start}-{self.line_end} is invalid")
        problems += self._validity_problems()
        if problems:
            raise ValueError("; ".join(problems))

    def _validity_problems(self) -> list[str]:
        out = []
        if self.valid_to is not None and self.valid_to < self.valid_from:
            out.append(f"valid_to {format_time(self.valid_to)} is before valid_from "
                       f"{format_time(self.valid_from)}")
        if self.superseded_by is not None and self.valid_to is None:
            out.append("superseded_by is set but valid_to is not")
        if self.id in (self.supersedes, self.superseded_by):
            out.append("a memory cannot supersede itself")
        if self.supersession is not None and self.supersedes is None:
            out.append("supersession is set but supersedes is not")
        return out

    @property
    def valid_from(self) -> datetime:
        """When this memory became true: ``event_time``, else ``created_at`` (spec §4.6)."""
        return self.event_time if self.event_time is not None else self.created_at

    @property
    def current(self) -> bool:
        """Whether nothing has ended this memory's validity (``valid_to`` is null)."""
        return self.valid_to is None

    def valid_at(self, when: datetime) -> bool:
        """Whether the memory held at ``when``: ``valid_from <= when < valid_to``."""
        when = utc(when)
        return self.valid_from <= when and (self.valid_to is None or when < self.valid_to)

    @classmethod
    def create(
        cls,
        content: str,
        *,
        now: datetime,
        id: str | None = None,
        created_at: datetime | None = None,
        updated_at: datetime | None = None,
        **fields: Any,
    ) -> Memory:
        """Make a memory, computing ``content_hash`` and, when ``id`` is not given, a UUIDv5 id.

        Raises:
            ValueError: a field breaks the schema (empty content, unknown enum value ...).
        """
        # what a writer must refuse (spec §2, §14); a cube already written is read as it is
        problems = _principal_problems(fields.get("owner"), tuple(fields.get("readers", ())))
        try:  # stored as RFC 8785 canonical JSON (spec §4): I-JSON numbers only
            canonical_json(fields.get("extra", {}))
        except (ValueError, TypeError) as e:
            problems.append(f"extra cannot be stored as canonical JSON ({e}; give such "
                            "numbers as strings)")
        if problems:
            raise ValueError("; ".join(problems))
        chash = content_hash(content, fields.get("speaker"), fields.get("event_time"))
        created = utc(created_at or now)
        return cls(
            id=id or derived_id(chash),
            content=content,
            content_hash=chash,
            created_at=created,
            updated_at=utc(updated_at or created),
            **fields,
        )

    def expired(self, now: datetime) -> bool:
        """True once ``expires_at`` has passed (at ``now``, an aware datetime)."""
        return self.expires_at is not None and self.expires_at <= now

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; times as ISO 8601 strings, tuples as lists. The validity
        fields (:data:`VALIDITY_FIELDS`) appear only when set, so a current memory's record
        is the same as in format 1.6 (spec §4.6)."""
        out: dict[str, Any] = {}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if value is None:
                if name in VALIDITY_FIELDS:
                    continue
            elif isinstance(value, datetime):
                value = format_time(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Memory:
        """Inverse of :meth:`to_dict`. Unknown keys are refused. Raises ``ValueError``."""
        unknown = sorted(set(data) - _FIELD_SET)
        if unknown:
            raise ValueError(f"unknown memory fields: {', '.join(unknown)}")
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key in TIME_FIELDS:
                value = None if value is None else parse_time(value)
            elif key in ("readers", "sensitivity", "tags"):
                value = tuple(value or ())
            kwargs[key] = value
        return cls(**kwargs)

    def render(self) -> str:
        """The text shown to the model and indexed for search (spec §4.4).

        ``[8 May 2023] (Budget > Q3) Caroline: content`` — each bracketed part only when the
        memory has it.
        """
        parts = []
        if self.event_time is not None:
            et = self.event_time  # UTC; English month names whatever the locale
            parts.append(f"[{et.day} {MONTHS[et.month - 1]} {et.year}]")
        if self.section:
            parts.append(f"({self.section})")
        if self.speaker:
            parts.append(f"{self.speaker}:")
        parts.append(self.content)
        return " ".join(parts)


#: The fields of :class:`Memory`, in record order (read once: ``dataclasses.fields`` is slow).
_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(Memory))
_FIELD_SET = frozenset(_FIELD_NAMES)

#: The shortest id prefix a command accepts (``inspect`` and ``search`` show 8 characters).
MIN_PREFIX = 4


def resolve_id(given: str, known: Collection[str], what: str = "memory", *,
               strict: bool = True) -> str:
    """The one id of ``known`` that ``given`` names: itself, or a unique prefix of at least
    :data:`MIN_PREFIX` characters, as git takes abbreviated commit ids. Without ``strict``, an
    id nothing starts with comes back as it is (for the caller to report).

    Raises:
        UsageError: several ids start with ``given`` (naming up to five of them); with
            ``strict``, none does.
    """
    if given in known:
        return given
    found = sorted(k for k in known if k.startswith(given)) if len(given) >= MIN_PREFIX else []
    if len(found) == 1:
        return found[0]
    if not found and not strict:
        return given
    if not found:
        short = f" (give at least {MIN_PREFIX} characters)" if len(given) < MIN_PREFIX else ""
        raise UsageError(f"no {what} {given}{short}")
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    raise UsageError(f"{what} id {given} is ambiguous: {', '.join(found[:5])}{more}")
