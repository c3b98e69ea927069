"""Paths inside a cube, path safety, and atomic writes (spec/memcube.md §3).

Every write memos makes goes through this module: a file is written beside its target and
renamed over it; a cube directory is built in a hidden temporary sibling and renamed into place.
A failure or Ctrl-C removes the temporary and leaves the target as it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from memos_cli.atomic import _umask
from memos_cli.atomic import atomic_write_bytes as atomic_write_bytes  # single files, §3
from memos_cli.errors import CubeExistsError, CubeNotFoundError, FormatError, IntegrityError
from memos_cli.pausepoints import pause

MANIFEST = "manifest.json"
MEMORIES = "memories.arrow"
INDEX_DIR = "index"  # the LanceDB index of formats 1.0-1.7
INDEX_FILE = "index.arrow"  # the index of format 1.8 (spec §6)
SIGNATURE = "memcube.sig"
KV_DIR = "kv"  # activation tier (spec §10)
LORA_DIR = "lora"  # reserved: parameter tier (spec §11)
SUFFIX = ".memcube"

#: File name endings a cube must never hold: formats that run code when loaded.
FORBIDDEN_SUFFIXES = (".pickle", ".pkl", ".pt", ".pth", ".bin", ".joblib", ".npy", ".npz",
                      ".ckpt", ".dill", ".h5", ".hdf5", ".keras", ".sav")


def remove_tree(path: Path) -> None:
    """Remove a file or a folder (not following a link), if present: an index is a file from
    format 1.8 and a folder before (spec §6)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def normalize_modes(root: Path) -> None:
    """Give every file under ``root`` mode 0666 and every directory 0777, less the umask
    (spec §3): libraries that write through a private temporary file (safetensors, PEFT)
    leave 0600."""
    mask = _umask()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for names, mode in ((dirnames, 0o777), (filenames, 0o666)):
            for name in names:
                p = os.path.join(dirpath, name)
                if not os.path.islink(p):  # a writer's own copy holds none; never follow one
                    os.chmod(p, mode & ~mask)


def plain_relative(rel: str) -> bool:
    """Whether ``rel`` is a relative POSIX path without empty, ``.`` or ``..`` parts,
    backslashes or NUL: one that cannot leave the directory it is joined to."""
    return bool(rel) and "\0" not in rel and "\\" not in rel and \
        not PurePosixPath(rel).is_absolute() and \
        not any(part in ("", ".", "..") for part in rel.split("/"))


def check_member(root: Path, rel: str, *, what: str = "path") -> Path:
    """Resolve a manifest path ``rel`` inside cube ``root``, refusing anything that escapes it.

    A member path is relative, POSIX-separated, without ``.``/``..`` parts, and neither it nor
    any parent inside the cube may be a symbolic link.

    Raises:
        FormatError: the path is absolute, escapes the cube, or passes through a symlink.
    """
    if not plain_relative(rel):
        raise FormatError(f"{what} {rel!r} is not a plain relative path inside the cube",
                          path=root / MANIFEST)
    pure = PurePosixPath(rel)
    current = root
    for part in pure.parts:
        current = current / part
        if current.is_symlink():
            raise FormatError(f"{what} {rel!r} is a symbolic link", path=root / MANIFEST)
    return current


def refused_member(rel: str, *, directory: bool = False) -> str | None:
    """Why a cube may not hold the file (or, with ``directory``, the directory) at ``rel``, or
    ``None``: a git file, at any depth and in any case, which signatures do not cover, or a
    format that can run code when loaded (``FORBIDDEN_SUFFIXES``). Spec §3; pulls apply it to
    remote file names before anything is written."""
    parts = rel.split("/")
    if any(p.lower().startswith(".git") for p in parts):
        return "a git file that signatures do not cover"
    if not directory and parts[-1].lower().endswith(FORBIDDEN_SUFFIXES):
        return "a format that can run code when loaded (pickle); memos never loads such files"
    return None


def scan_members(root: Path) -> list[str]:
    """All regular files under ``root`` as sorted POSIX relative paths.

    Raises:
        IntegrityError: the cube holds a symbolic link, a special file, or a file whose format
            can run code on load (pickle and friends, see ``FORBIDDEN_SUFFIXES``).
    """
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            p = base / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                raise IntegrityError(f"cube holds a symbolic link: {rel}", path=root)
            is_dir = name in dirnames
            if not is_dir and not p.is_file():
                raise IntegrityError(f"cube holds a special file: {rel}", path=root)
            why = refused_member(rel, directory=is_dir)
            if why:
                raise IntegrityError(f"cube holds {rel}, {why}", path=root)
            if not is_dir:
                found.append(rel)
    return sorted(found)


def require_cube_dir(path: str | Path) -> Path:
    """Return ``path`` as a ``Path`` if it is a cube directory, else raise ``CubeNotFoundError``."""
    p = Path(path)
    if p.is_symlink():
        raise CubeNotFoundError("is a symbolic link, not a cube directory", path=p)
    if not p.exists():
        raise CubeNotFoundError("no such cube", path=p)
    if not p.is_dir():
        raise CubeNotFoundError("is not a directory (a cube is a NAME.memcube/ directory)", path=p)
    if not (p / MANIFEST).is_file():
        raise CubeNotFoundError(f"is not a cube: it has no {MANIFEST}", path=p)
    return p


def is_cube_dir(path: Path) -> bool:
    """Whether ``path`` is a real directory (not a symbolic link) holding a ``manifest.json``:
    the only thing ``--force`` may replace (spec §3)."""
    return path.is_dir() and not path.is_symlink() and (path / MANIFEST).is_file()


#: A temporary directory without a writer's pid in its name is stale after this long.
STALE_AFTER_S = 24 * 3600


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clean_stale(dest: Path) -> list[Path]:
    """Remove the temporary directories that killed writes to ``dest`` left beside it
    (``.NAME.<pid>.<random>.tmp`` of a process that is gone; older ones without a pid after
    a day), say so on stderr, and return them."""
    import glob
    import time

    gone = []
    for p in dest.parent.glob(f".{glob.escape(dest.name)}.*.tmp"):
        if p.is_symlink() or not p.is_dir():
            continue
        parts = p.name[len(dest.name) + 2:].split(".")
        pid = int(parts[0]) if len(parts) == 3 and parts[0].isdigit() else None
        if pid is not None and _alive(pid):
            continue
        if pid is None and time.time() - p.stat().st_mtime < STALE_AFTER_S:
            continue
        shutil.rmtree(p, ignore_errors=True)
        gone.append(p)
        logging.getLogger("memos").warning("note: removed %s, left by an interrupted write of "
                                           "%s", p.name, dest.name)
    return gone


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)``; ``False`` where
    the system or file system lacks it (the caller then falls back to two renames)."""
    import ctypes
    import errno
    import sys

    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def check_target(target: str | Path, *, force: bool) -> None:
    """What :func:`atomic_directory` checks before any work, for a command to check before it
    loads a model: ``target`` is free, or a cube that ``force`` may replace.

    Raises:
        CubeExistsError: as :func:`atomic_directory`.
    """
    _check_replace(Path(target), force, is_cube_dir)


def _check_replace(dest: Path, force: bool, replaceable: Callable[[Path], bool]) -> None:
    if not (dest.exists() or dest.is_symlink()):
        return
    if not force:
        raise CubeExistsError("already exists (use --force to replace it)", path=dest)
    if not replaceable(dest):
        what = ("a symbolic link" if dest.is_symlink() else
                "a directory that is not a cube" if dest.is_dir() else "a file")
        raise CubeExistsError(f"exists and is {what}; --force replaces only a cube, never "
                              "anything else: choose another path or remove it yourself",
                              path=dest)


@contextlib.contextmanager
def atomic_directory(target: str | Path, *, force: bool = False,
                     replaceable: Callable[[Path], bool] = is_cube_dir) -> Iterator[Path]:
    """Build a directory in a hidden temporary sibling and rename it to ``target`` on success.

    With ``force``, an existing ``target`` is replaced, but only when ``replaceable(target)``
    says it is what the command makes (by default a cube directory, ``is_cube_dir``); a file,
    a symbolic link or any other directory is never replaced. The swap is one atomic
    ``renameat2(RENAME_EXCHANGE)`` where Linux has it (else renamed aside, the new one renamed
    in), then the old one removed. On any exception, Ctrl-C included, the temporary directory
    is removed and ``target`` is untouched.

    Raises:
        CubeExistsError: ``target`` exists and ``force`` is false, or it is not replaceable
            (checked before any work is done, and again just before the rename).
    """
    dest = Path(target)
    _check_replace(dest, force, replaceable)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.{os.getpid()}.", suffix=".tmp",
                                dir=dest.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; a cube is shared as usual
        yield tmp
        pause("write:before-commit")
        if dest.exists() or dest.is_symlink():
            if not force:
                raise CubeExistsError("appeared while it was being written", path=dest)
            _check_replace(dest, force, replaceable)
            if dest.is_dir() and not dest.is_symlink() and exchange(tmp, dest):
                # one atomic step: readers see the old cube or the new one, never neither;
                # tmp now holds the old cube (a kill here leaves it to clean_stale)
                pause("write:after-commit")
                shutil.rmtree(tmp, ignore_errors=True)
                return
            old = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.old")
            os.rename(dest, old)
            try:
                os.rename(tmp, dest)
            except BaseException:
                os.rename(old, dest)
                raise
            pause("write:after-commit")
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
        else:
            os.rename(tmp, dest)
            pause("write:after-commit")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def rewrite_cube(cube_dir: Path) -> Iterator[Path]:
    """Yield a private copy of ``cube_dir`` to change; on success it replaces the cube.

    Used by commands that change a cube in place (``reindex``, re-signing): the cube is never
    seen half-changed, and a failure leaves it exactly as it was.
    """
    with atomic_directory(cube_dir, force=True) as tmp:
        shutil.copytree(cube_dir, tmp, symlinks=True, dirs_exist_ok=True)
        yield tmp
