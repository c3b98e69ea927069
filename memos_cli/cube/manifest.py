"""``manifest.json``: parse, validate, write (spec/memcube.md §5, spec/manifest.schema.json)."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from memos_cli import strictjson
from memos_cli.cube.layout import MANIFEST, atomic_write_bytes
from memos_cli.errors import FormatError

FORMAT = "memcube"
#: The format version this code writes; it reads every older 1.x fully, and newer 1.x minor
#: versions by ignoring the top-level keys it does not know. 1.1 added ``kv``, 1.2 ``lora``,
#: 1.3 ``kv_chunks``, 1.4 ``index_files``, 1.5 RFC 8785 digests, ``content_digest``,
#: ``attachments`` and the closed layout, 1.6 MemReaders, 1.7 valid time, 1.8 the index as
#: one Arrow IPC file (``index.arrow``; the LanceDB table is a cache derived from it).
FORMAT_VERSION = (1, 8)
#: The format version that added each top-level key (spec §1).
KEY_SINCE = {"kv": (1, 1), "lora": (1, 2), "kv_chunks": (1, 3), "index_files": (1, 4),
             "revision": (1, 4), "content_digest": (1, 5), "attachments": (1, 5),
             "readers": (1, 6)}
#: Tiers in the order a manifest lists them.
TIER_ORDER = ("plaintext", "activation", "parameter")
MAX_MANIFEST_BYTES = 16 << 20
#: ``format_version`` (the schema's pattern): no leading zeros, at most 9 digits a part.
VERSION_PATTERN = r"(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})"


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of the manifest (the file spec/manifest.schema.json links to)."""
    text = resources.files("memos_cli.cube").joinpath("manifest.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@dataclass(frozen=True, kw_only=True)
class FileEntry:
    """A file of the cube: relative POSIX ``path``, ``sha256`` digest, ``size`` in bytes."""

    path: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


@dataclass(frozen=True, kw_only=True)
class Manifest:
    """The parsed manifest. ``raw`` keeps every key as read, for ``inspect --json``."""

    format_version: str
    cube_id: str
    name: str
    description: str
    created_at: str
    producer: dict[str, str]
    tiers: tuple[str, ...]
    counts: dict[str, int]
    provenance: dict[str, Any]
    #: the plaintext tier: all three present, or none (a KV-only cube, format 1.1)
    memories_file: FileEntry | None = None
    index: dict[str, Any] | None = None
    embedding: dict[str, Any] | None = None
    kv: dict[str, Any] | None = None
    lora: dict[str, Any] | None = None
    kv_chunks: dict[str, Any] | None = None
    #: every file of the index with its digest (format 1.4; ``None`` in older cubes)
    index_files: list[dict[str, Any]] | None = None
    #: how many times the memories were changed in place (``memos add``/``rm-memories``), 1-based
    revision: int | None = None
    #: ``sha256`` of the RFC 8785 JSON list of the memories' records (format 1.5, §5)
    content_digest: str | None = None
    #: further top-level files (a dump's access log and usage), each ``{path, sha256, size}``
    attachments: list[dict[str, Any]] | None = None
    #: the MemReaders run over the memories (format 1.6, §6.1), each with its options and model
    readers: list[dict[str, Any]] | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as written, keys in spec order."""
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "cube_id": self.cube_id,
            "name": self.name,
            "description": self.description,
            "created_at": self.created_at,
            "producer": dict(self.producer),
            "tiers": list(self.tiers),
            "counts": dict(self.counts),
            **({"files": {"memories": self.memories_file.to_dict()},
                "index": dict(self.index or {}),
                "embedding": dict(self.embedding or {})} if self.memories_file else {}),
            **({"index_files": self.index_files} if self.index_files is not None
               and self.memories_file else {}),
            **({"content_digest": self.content_digest} if self.content_digest is not None
               and self.memories_file else {}),
            "provenance": self.provenance,
            **({"kv": self.kv} if self.kv is not None else {}),
            **({"lora": self.lora} if self.lora is not None else {}),
            **({"kv_chunks": self.kv_chunks} if self.kv_chunks is not None else {}),
            **({"revision": self.revision} if self.revision is not None else {}),
            **({"attachments": self.attachments} if self.attachments is not None else {}),
            **({"readers": self.readers} if self.readers is not None else {}),
        }

    @property
    def version(self) -> tuple[int, int]:
        """``format_version`` as ``(major, minor)``."""
        major, minor = self.format_version.split(".")
        return int(major), int(minor)

    def listed_files(self) -> list[str]:
        """Every path the manifest lists (memories, index files, KV segments and chunk files,
        LoRA files, attachments): with ``manifest.json`` and ``memcube.sig``, the closed
        list of a 1.5 cube's files (spec §3)."""
        return listed_paths(self.to_dict()) + future_paths(self.raw)

    @classmethod
    def from_dict(cls, data: Any, *, path: str | Path = MANIFEST) -> Manifest:
        """Validate ``data`` and build a ``Manifest``.

        Checks, in order: it is an object naming format ``memcube``; its major version is 1 (an
        unknown major is refused); it matches the JSON Schema (every problem is collected and
        reported once).

        Raises:
            FormatError: naming ``path`` and every problem found.
        """
        if not isinstance(data, dict):
            raise FormatError("manifest is not a JSON object", path=path)
        if data.get("format") != FORMAT:
            raise FormatError(f"not a MemCube manifest (format is {data.get('format')!r})",
                              path=path)
        version = data.get("format_version")
        major, minor = _parse_version(version, path)
        if major != FORMAT_VERSION[0]:
            raise FormatError(
                f"format version {version} is not supported: this memos reads format "
                f"{FORMAT_VERSION[0]}.x (upgrade memos to read it)",
                path=path,
            )
        checked = dict(data)
        if minor > FORMAT_VERSION[1]:  # a newer minor only adds keys: ignore those we lack
            known = schema()["properties"]
            checked = {k: v for k, v in data.items() if k in known}
        early = [k for k, since in KEY_SINCE.items() if k in checked and (major, minor) < since]
        if early:
            since = KEY_SINCE[early[0]]
            raise FormatError(f"manifest has {early[0]!r}, a key of format {since[0]}.{since[1]},"
                              f" but declares format {version}", path=path)
        problems = sorted(
            jsonschema.Draft202012Validator(schema()).iter_errors(checked),
            key=lambda e: list(map(str, e.absolute_path)),
        )
        if not problems:
            activation = bool(checked.get("kv", {}).get("segments")) or bool(
                checked.get("kv_chunks", {}).get("sets"))
            if activation != ("activation" in checked["tiers"]):
                raise FormatError("tiers must list 'activation' exactly when kv segments or "
                                  "KV chunk sets exist", path=path)
            if ("lora" in checked) != ("parameter" in checked["tiers"]):
                raise FormatError("tiers must list 'parameter' exactly when lora is present",
                                  path=path)
            plain = [k for k in ("files", "index", "embedding") if k in checked]
            if ("plaintext" in checked["tiers"]) != bool(plain) or (plain and len(plain) != 3):
                raise FormatError("tiers must list 'plaintext' exactly when files, index and "
                                  "embedding are all present", path=path)
            if clash := path_clash(listed_paths(checked)):
                raise FormatError(clash, path=path)
            _check_semantics(checked, path)
        if problems:
            text = "; ".join(_describe(e) for e in problems[:10])
            more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
            raise FormatError(f"invalid manifest: {text}{more}", path=path)
        files = checked["files"]["memories"] if "files" in checked else None
        return cls(
            format_version=version,  # type: ignore[arg-type]
            cube_id=checked["cube_id"],
            name=checked["name"],
            description=checked["description"],
            created_at=checked["created_at"],
            producer=checked["producer"],
            tiers=tuple(checked["tiers"]),
            counts=checked["counts"],
            memories_file=FileEntry(**files) if files else None,
            index=checked.get("index"),
            embedding=checked.get("embedding"),
            provenance=checked["provenance"],
            kv=checked.get("kv"),
            lora=checked.get("lora"),
            kv_chunks=checked.get("kv_chunks"),
            index_files=checked.get("index_files"),
            revision=checked.get("revision"),
            content_digest=checked.get("content_digest"),
            attachments=checked.get("attachments"),
            readers=checked.get("readers"),
            raw=data,
        )


def _describe(e: jsonschema.ValidationError) -> str:
    """One schema problem in words: where, and what (regular expressions left out)."""
    where = "/".join(map(str, e.absolute_path)) or "(top)"
    if e.validator == "pattern" and where.endswith("created_at"):
        return f"{where}: {e.instance!r} is not a UTC time YYYY-MM-DDTHH:MM:SS[.ffffff]Z"
    if e.validator == "pattern":
        return f"{where}: {e.instance!r} does not have the form the spec gives"
    if e.validator == "not" and isinstance(e.instance, str):
        return f"{where}: {e.instance!r} is not a plain relative path inside the cube"
    return f"{where}: {e.message}"


def listed_paths(data: dict[str, Any]) -> list[str]:
    """Every file path a manifest (as a dict) lists, in manifest order, repeats kept."""
    out = [f["path"] for f in data.get("files", {}).values()]
    out += [f["path"] for f in data.get("index_files", [])]
    out += [e["path"] for e in data.get("kv", {}).get("segments", [])]
    for s in data.get("kv_chunks", {}).get("sets", []):
        out += [s["prefix"]["path"]] + [c["path"] for c in s["chunks"]]
    out += [f["path"] for f in data.get("lora", {}).get("files", [])]
    out += [f["path"] for f in data.get("attachments", [])]
    return out


def path_clash(paths: list[str]) -> str | None:
    """Why the manifest's file paths cannot all be files of one cube on every file system, or
    ``None`` (spec §5): a path listed twice, two paths equal but for case (they are one file
    on macOS and Windows), a path not in Unicode NFC (macOS may store it decomposed), or a
    path listed as a file that is also the folder of another listed path."""
    seen: dict[str, str] = {}
    for p in paths:
        if unicodedata.normalize("NFC", p) != p:
            return f"{p!r} is not in Unicode NFC; the manifest must list paths in NFC"
        key = p.casefold()
        if key in seen:
            other = "" if seen[key] == p else f" ({seen[key]} differs only in case)"
            return f"{p} is listed twice in the manifest{other}"
        seen[key] = p
    folders = {"/".join(k.split("/")[:n]) for k in seen for n in range(1, k.count("/") + 1)}
    for key, p in seen.items():
        if key in folders:
            return f"{p} is listed as a file and is also the folder of another listed file"
    return None


def future_paths(raw: dict[str, Any]) -> list[str]:
    """The files a newer minor version lists under top-level keys this reader does not know
    (spec §1): every string under a ``"path"`` key, at any depth, of such a key's value. They
    count as listed for the closed layout (§3); nothing else is known about them."""
    version = raw.get("format_version")
    m = re.fullmatch(VERSION_PATTERN, version) if isinstance(version, str) else None
    if m is None or (int(m[1]), int(m[2])) <= FORMAT_VERSION:
        return []
    out: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                if k == "path" and isinstance(x, str):
                    out.append(x)
                else:
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    known = schema()["properties"]
    for k, v in raw.items():
        if k not in known:
            walk(v)
    return out


def _check_semantics(data: dict[str, Any], path: str | Path) -> None:
    """The rules JSON Schema cannot state: tier order and real calendar times."""
    tiers = list(data["tiers"])
    if tiers != [t for t in TIER_ORDER if t in tiers]:
        raise FormatError(f"tiers {tiers} are not in the order {', '.join(TIER_ORDER)}",
                          path=path)
    try:
        datetime.fromisoformat(data["created_at"].replace("Z", "+00:00"))
    except ValueError as e:
        raise FormatError(f"created_at {data['created_at']!r} is not a real time ({e})",
                          path=path) from e


def _parse_version(version: Any, path: str | Path) -> tuple[int, int]:
    """``MAJOR.MINOR`` as two integers (spec §1): ASCII digits without leading zeros, so
    ``"1.00"`` and ``"01.5"`` are refused and ``"1.10"`` is minor 10, newer than ``"1.9"``."""
    m = re.fullmatch(VERSION_PATTERN, version) if isinstance(version, str) else None
    if m is None:
        raise FormatError(f"format_version {version!r} is not MAJOR.MINOR (digits without "
                          "leading zeros, e.g. 1.7)", path=path)
    return int(m[1]), int(m[2])


def read_manifest(cube_dir: Path) -> Manifest:
    """Read and validate ``CUBE/manifest.json``.

    Raises:
        FormatError: unreadable, oversized, not UTF-8, malformed JSON (with line and column),
            unknown major version, or schema violations.
    """
    path = cube_dir / MANIFEST
    if path.is_symlink():
        raise FormatError("manifest is a symbolic link", path=path)
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise FormatError(f"manifest is {size} bytes, over the {MAX_MANIFEST_BYTES} limit",
                              path=path)
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"manifest is not UTF-8 ({e.reason} at byte {e.start})",
                          path=path) from e
    except OSError as e:
        raise FormatError(f"cannot read manifest: {e.strerror}", path=path) from e
    try:
        data = strictjson.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}",
                          path=path) from e
    except strictjson.StrictJSONError as e:
        raise FormatError(f"manifest JSON refused: {e}", path=path) from e
    return Manifest.from_dict(data, path=path)


def write_manifest(cube_dir: Path, manifest: Manifest) -> None:
    """Write ``CUBE/manifest.json`` atomically: UTF-8, 2-space indent, trailing newline."""
    text = json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False) + "\n"
    atomic_write_bytes(cube_dir / MANIFEST, text.encode("utf-8"))
