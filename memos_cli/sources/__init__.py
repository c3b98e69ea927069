"""Readers that turn files into memories: text/Markdown, JSONL, chat transcripts, LoCoMo,
and importers for other memory systems: MemOS cube directories, Letta agent files, mem0
exports.

:func:`read_sources` is the entry point: it expands directories, detects each file's format,
reads it, and records its SHA-256 and size for the manifest's provenance.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from memos_cli.digest import sha256_file
from memos_cli.errors import EmptyCorpusError, SourceError
from memos_cli.sources import (
    chat,
    jsonl,
    letta,
    locomo,
    markdown_export,
    mem0,
    memos_cube,
    rst,
    text,
)
from memos_cli.sources.base import (
    ENCODING,
    Defaults,
    SourceResult,
    load_json,
    memory_budget,
    read_text,
)

__all__ = ["SUFFIXES", "Defaults", "SourceResult", "Sources", "read_source", "read_sources"]

#: File suffixes a directory walk picks up, and the reader for each.
SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text",
            ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".af": "letta",
            ".rst": "rst", ".rest": "rst"}


@dataclass
class Sources:
    """Everything read: one result per file, plus files a directory walk passed over."""

    results: list[SourceResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    #: files left out because they could not be read (``--skip-unreadable``): "path: why"
    unreadable: list[str] = field(default_factory=list)


def read_source(path: Path, shown: str, defaults: Defaults) -> SourceResult:
    """Read one file, choosing the reader by suffix (and, for ``.json``, by layout).

    Raises:
        SourceError: unsupported type, unreadable, malformed, or an unrecognised JSON layout.
    """
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None and not path.suffix and defaults.extensionless:
        kind = defaults.extensionless
    if kind is None:
        raise SourceError(
            f"unsupported file type {path.suffix or '(no suffix)'!r}; memos packs "
            f"{', '.join(sorted(SUFFIXES))} (and files without an extension with "
            "--extensionless)", path=path)
    if kind == "markdown" and markdown_export.looks_like(read_text(path)):
        result = markdown_export.read(path, shown, defaults)
    elif kind == "rst":
        result = rst.read(path, shown, defaults)
    elif kind in ("markdown", "text"):
        result = text.read(path, shown, defaults, markdown=kind == "markdown")
    elif kind == "jsonl":
        result = jsonl.read(path, shown, defaults)
    elif kind == "letta":
        result = letta.read(path, shown, defaults)
    else:
        data = load_json(path, read_text(path))
        if chat.looks_like(data):
            result = chat.read(path, shown, data, defaults)
        elif locomo.looks_like(data):
            result = locomo.read(path, shown, data, defaults)
        elif memos_cube.looks_like_data(data):
            result = memos_cube.read_data(path, shown, data, defaults, SourceResult(
                path=shown, format="memos", sha256="", size=0))
        elif mem0.looks_like(data):
            result = mem0.read(path, shown, data, defaults)
        else:
            raise SourceError(
                "JSON layout not recognised: expected a chat transcript (a list of "
                "role/content messages), a LoCoMo conversation, MemOS textual memory "
                "(tree_text nodes or general_text payloads) or a mem0 export", path=path)
    result.sha256 = sha256_file(path)
    result.size = path.stat().st_size
    return result


def read_sources(paths: list[str | Path], defaults: Defaults) -> Sources:
    """Read every file named, walking directories in sorted order.

    In a directory, hidden entries are passed over and files of other types are listed in
    ``Sources.skipped``; a file named directly must be of a supported type.

    Raises:
        SourceError: a path is missing or is a cube, or any file fails to read.
    """
    out = Sources()
    with memory_budget():
        _read_into(out, paths, defaults)
    return out


def default_base(paths: list[str | Path]) -> Path:
    """The common parent of the sources given: the deepest directory holding every one of them
    (for ``pack corpus``, the directory that holds ``corpus``)."""
    parents = [os.path.dirname(os.path.abspath(p)) for p in paths]
    return Path(os.path.commonpath(parents)) if parents else Path.cwd()


def shown_path(f: Path, given: Path, base: Path | None) -> str:
    """How a source file is recorded (provenance, ``source_file``; spec §5): relative to
    ``base`` (``--base``, default :func:`default_base` of the sources given) when inside it,
    else relative to the parent of the path given. Neither the working directory nor the
    machine's absolute layout is stored, so packing is reproducible (spec §9.2)."""
    full = Path(os.path.abspath(f))
    for root in (Path(os.path.abspath(base or Path.cwd())), Path(os.path.abspath(given)).parent):
        try:
            return full.relative_to(root).as_posix()
        except ValueError:
            continue
    return f.as_posix()


def check_paths(paths: list[str | Path]) -> None:
    """Refuse sources that cannot be read before any work starts (a command calls this before
    it loads the embedder, so a typo costs no model load).

    Raises:
        SourceError: a path that does not exist, or a cube given as a source.
    """
    for given in paths:
        p = Path(given)
        if not p.exists():
            raise SourceError("no such file or directory", path=p)
        if p.is_dir() and not memos_cube.looks_like(p) and (
                p.suffix == ".memcube" or (p / "manifest.json").is_file()):
            raise SourceError("is a cube, not a source (packing cubes into cubes is not "
                              "supported yet)", path=p)


def _read_into(out: Sources, paths: list[str | Path], defaults: Defaults) -> None:
    base = defaults.base or default_base(paths)
    check_paths(paths)
    for given in paths:
        p = Path(given)
        if p.is_dir() and memos_cube.looks_like(p):
            out.results.append(memos_cube.read(p, shown_path(p, p, base), defaults))
        elif p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    f = Path(dirpath) / name
                    if name.startswith("."):
                        continue
                    known = f.suffix.lower() in SUFFIXES or (
                        not f.suffix and defaults.extensionless is not None)
                    if not known or f.is_symlink():
                        out.skipped.append(shown_path(f, p, base))
                        continue
                    _read_one(out, f, shown_path(f, p, base), defaults)
        else:
            _read_one(out, p, shown_path(p, p, base), defaults)


def _read_one(out: Sources, path: Path, shown: str, defaults: Defaults) -> None:
    token = ENCODING.set(defaults.encoding)
    try:
        out.results.append(read_source(path, shown, defaults))
    except SourceError as e:
        if not defaults.skip_unreadable or isinstance(e, EmptyCorpusError):
            raise
        out.unreadable.append(f"{shown}: {e.message}")
    finally:
        ENCODING.reset(token)
