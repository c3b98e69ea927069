"""Cube arguments that may be remote: ``oci://`` references and object-storage URIs
(``s3://``, ``gs://``, ``az://``, ``file://``) as well as local paths.

A command that reads a remote cube works on a temporary local copy fetched for it
(:func:`memos_cli.memstore.pull.fetched`: every object checked, nothing placed anywhere) and
removed when the command ends; a command that writes one (``pack -o``, ``convert``) writes a
local cube and then publishes it with ``manifest.json`` last (:mod:`memos_cli.objstore.cubes`).
Errors name the URI and the file in the cube, never the temporary directory.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from memos_cli.cube import open_verified
from memos_cli.errors import CubeExistsError, CubeNotFoundError, FormatError, UsageError
from memos_cli.memstore.pull import fetched, naming
from memos_cli.memstore.ref import is_remote
from memos_cli.objstore.cubes import read_manifest, upload
from memos_cli.objstore.uri import filesystem, is_store_uri, parse, remote_errors

_SCOPES: list[tuple[contextlib.ExitStack, dict[str, str]]] = []


@contextlib.contextmanager
def command_scope() -> Iterator[None]:
    """The lifetime of one command's temporary copies (``memos_cli.cli.app`` holds it around
    every command): they are removed when the command ends, however it ends."""
    with contextlib.ExitStack() as stack:
        _SCOPES.append((stack, {}))
        try:
            yield
        finally:
            _SCOPES.pop()


def local_cube(arg: str | Path) -> Path:
    """A local directory for the cube ``arg``: the path itself, or a fetched temporary copy of a
    remote cube that lives until the command ends."""
    if not is_remote(str(arg)):
        return Path(arg)

    if not _SCOPES:
        raise RuntimeError("local_cube runs inside command_scope()")
    stack, names = _SCOPES[-1]
    path, _ = stack.enter_context(fetched(str(arg)))
    names[str(path)] = str(arg)
    return path


def is_cube_arg(arg: str | Path) -> bool:
    """Whether a lone positional argument names a cube rather than being a query or a
    question: a remote reference, an existing path, or a name ending in ``.memcube``."""
    text = str(arg)
    return is_remote(text) or text.endswith(".memcube") or Path(text).exists()


def shown(path: Path | str) -> str:
    """The name to show for ``path``: the URI a temporary copy was fetched from."""
    names = _SCOPES[-1][1] if _SCOPES else {}
    return names.get(str(path), str(path))


def open_arg(arg: str | Path) -> Any:
    """:func:`memos_cli.cube.open_verified` of a local or remote cube."""
    path = local_cube(arg)
    if path == Path(arg):
        return open_verified(path)
    with naming(path, str(arg)):
        return open_verified(path)


@contextlib.contextmanager
def output_cube(arg: str, *, force: bool) -> Iterator[Path]:
    """Where a command writes a new cube ``arg``: the path itself, or for an object-storage URI
    a temporary local cube that is uploaded when the body succeeds.

    Raises:
        UsageError: an ``oci://`` target (use ``memos push``).
    """
    if not is_remote(arg):
        yield Path(arg)
        return

    if not is_store_uri(arg):
        raise UsageError(f"{arg!r}: write the cube locally, then publish it with memos push")

    uri = parse(arg)
    if not force:  # refuse before the work, as for a local cube

        with remote_errors(uri, "checking the target"):
            try:
                read_manifest(filesystem(uri), uri)
                raise CubeExistsError("already exists (use --force to replace it)", path=arg)
            except (CubeNotFoundError, FormatError):
                pass
    with tempfile.TemporaryDirectory(prefix="memos-out-") as tmp:
        local = Path(tmp) / (uri.path.rsplit("/", 1)[-1] or "cube.memcube")
        with naming(Path(tmp), arg):
            yield local
        upload(local, arg, force=True)


@contextlib.contextmanager
def changed_cube(arg: str | Path) -> Iterator[Path]:
    """A cube a command changes in place: the path itself, or a fetched copy of a cube in a
    bucket that replaces it there when the body succeeds."""
    if not is_remote(str(arg)):
        yield Path(arg)
        return

    if not is_store_uri(str(arg)):
        raise UsageError(f"{arg!r}: a cube in a registry is changed by pulling, changing and "
                         "pushing it")

    with fetched(str(arg)) as (path, _), naming(path, str(arg)):
        yield path
        upload(path, str(arg), force=True)
