"""The trust store (MemGovernance): the public keys whose signed cubes `memos load` accepts,
one ``NAME.pub`` (EC P-256 PEM) a signer under ``MEMOS_HOME/trust``, and the trust decision
for a cube."""

from __future__ import annotations

from pathlib import Path

from memos_cli.cube.layout import SIGNATURE, atomic_write_bytes
from memos_cli.cube.signature import _load_public, check_payload, key_fingerprint, verify_cube
from memos_cli.errors import KeyFileError, MemosError, SignatureError, TamperedError, UsageError
from memos_cli.localfiles import regular
from memos_cli.models.chat import memos_home


def trust_dir() -> Path:
    """``MEMOS_HOME/trust``: one ``NAME.pub`` (EC P-256 PEM) a trusted signer."""
    return memos_home() / "trust"


def trust_add(public_key: str | Path, name: str) -> dict[str, str]:
    """Trust cubes signed by ``public_key`` under ``name``.

    Raises:
        KeyFileError: not an EC P-256 public key. UsageError: a bad or taken name.
    """
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise UsageError(f"--name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    key = Path(public_key)
    _load_public(key)
    target = trust_dir() / f"{name}.pub"
    if target.exists():
        raise UsageError(f"a trusted key named {name!r} exists already (memos trust rm "
                         f"{name} first to replace it)", path=target)
    fingerprint = key_fingerprint(key)
    same = [k["name"] for k in trust_list() if k["fingerprint"] == fingerprint]
    if same:
        raise UsageError(f"this key is trusted already, as {same[0]!r}; to rename it, memos "
                         f"trust rm {same[0]}, then add it again", path=key)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, key.read_bytes())
    return {"name": name, "fingerprint": key_fingerprint(target), "path": str(target)}


def trust_rm(name: str) -> dict[str, str]:
    """Stop trusting the key named ``name`` (to revoke it, or to rotate: remove the old key,
    add the new one). Cubes it signed are refused by ``load`` and ``pull`` from then on.

    Raises:
        UsageError: no trusted key of that name (naming the trusted ones).
    """
    d = trust_dir()
    names = sorted(p.stem for p in d.glob("*.pub")) if d.is_dir() else []
    if name not in names:
        raise UsageError(f"no trusted key named {name!r}; trusted: "
                         f"{', '.join(names) or 'none'}")
    p = d / f"{name}.pub"
    try:
        regular(p)
        entry = {"name": name, "fingerprint": key_fingerprint(p), "path": str(p)}
    except (OSError, MemosError):  # a damaged entry is removed all the same
        entry = {"name": name, "fingerprint": "", "path": str(p)}
    p.unlink()
    return entry


def trust_list() -> list[dict[str, str]]:
    """The trusted keys: name, fingerprint and path, by name."""
    d = trust_dir()
    if not d.is_dir():
        return []
    out = []
    for p in sorted(d.glob("*.pub")):
        try:
            regular(p)  # a link or a FIFO (which would block the read) is never trusted
        except OSError as e:
            raise KeyFileError(f"trusted key {p.stem!r} {e.strerror or e}; remove it with "
                               f"memos trust rm {p.stem}", path=p) from e
        out.append({"name": p.stem, "fingerprint": key_fingerprint(p), "path": str(p)})
    return out


def check_trust(cube_path: Path, *, allow_unsigned: bool) -> str:
    """The name of the trusted key whose signature verifies the cube, ``"unsigned"`` or
    ``"untrusted"`` (only with ``allow_unsigned``).

    Raises:
        SignatureError: unsigned or signed by no trusted key (without ``allow_unsigned``), or
            changed since it was signed (always).
    """
    if not (cube_path / SIGNATURE).is_file():
        if allow_unsigned:
            return "unsigned"
        raise SignatureError("cube is unsigned; load it anyway with --allow-unsigned",
                             path=cube_path)
    last: SignatureError | None = None
    for key in trust_list():
        try:
            verify_cube(cube_path, key["path"])
            return key["name"]
        except TamperedError:
            raise
        except SignatureError as e:
            last = e

    check_payload(cube_path)  # tampering is refused whoever signed
    if allow_unsigned:
        return "untrusted"
    raise SignatureError("cube is signed by no key you trust (add its public key with `memos "
                         "trust add KEY.pub --name NAME`, or use --allow-unsigned)"
                         + (f"; last check: {str(last).split(': ', 1)[-1]}" if last else ""),
                         path=cube_path)


