"""Seals (MemGovernance, spec §16.5): a signature over each row of a vault's table and over
its role table, made by the writer's key, so that a row rewritten by someone who can write
the vault's files but does not hold a trusted key is refused instead of obeyed.

A seal is ``<fingerprint> <signature>``: the ``sha256:`` fingerprint of the signer's public
key (:func:`memos_cli.cube.signature.key_fingerprint`) and the base64 of a deterministic
ECDSA P-256 / SHA-256 signature (RFC 6979) over :func:`message`. The writer seals with its
signing key (``--key``-less: ``MEMOS_KEY`` or the config file's ``key``, as a pack is
signed); a reader knows the keys of its trust store (``memos trust add``) and its own.

What a reader does with a seal is its ``vault_seals`` setting (``MEMOS_VAULT_SEALS``):

- ``check`` (default): a seal by a known key that does not verify refuses the row; rows
  without a seal, or sealed by a key the reader does not know, are read as they are;
- ``require``: every row read must carry a seal that verifies with a known key.

A seal binds the row's key, kind, id, cube, content hash and record, not its vector or its
full-text column (which change how it ranks, not what it says or who may read it), nor a
version: a row that a trusted key sealed once can be put back (a rollback) or removed without
a trace here. The same holds for ``roles.json``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from memos_cli.config import signing_key, vault_seals
from memos_cli.cube.signature import _load_public, fingerprint_of, load_private_key
from memos_cli.digest import canonical_json
from memos_cli.errors import FormatError, KeyFileError
from memos_cli.governance import seal_cache
from memos_cli.governance.seal_cache import Verified
from memos_cli.governance.trust import trust_dir, trust_list

#: What every row message starts with, so that a seal is never valid as another signature.
ROW_DOMAIN = "memos-vault-row/1"
ROLES_DOMAIN = "memos-vault-roles/1"
#: The most bytes of a seal read (a fingerprint, a space, a DER signature in base64).
MAX_SEAL = 256


def message(domain: str, parts: Sequence[str]) -> bytes:
    """The bytes a seal signs: RFC 8785 canonical JSON of ``[domain, *parts]`` (an array of
    strings, UTF-8)."""
    return canonical_json([domain, *parts])


@dataclass(frozen=True)
class Sealer:
    """Seals with one EC P-256 private key."""

    key: ec.EllipticCurvePrivateKey
    fingerprint: str

    def seal(self, domain: str, parts: Sequence[str]) -> str:
        sig = self.key.sign(message(domain, parts),
                            ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
        return f"{self.fingerprint} {base64.b64encode(sig).decode('ascii')}"


@dataclass
class Checker:
    """Checks seals against the known public keys (fingerprint -> (name, key))."""

    policy: str
    known: dict[str, tuple[str, ec.EllipticCurvePublicKey]] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Whether any row could be refused: ``require``, or a key to check seals with."""
        return self.policy == "require" or bool(self.known)

    def check(self, domain: str, parts: Sequence[str], seal: str | None, *, row: str,
              where: Any, cache: Verified | None = None) -> str | None:
        """Check one seal; returns the signer's name (``None``: unsealed or unknown signer,
        which ``check`` accepts). With ``cache``, a seal it holds over the same message is
        not verified again, and one verified now is added to it.

        Raises:
            FormatError: (naming ``where`` and ``row``) a seal by a known key that does not
                verify, a malformed seal, or under ``require`` a row unsealed or sealed by an
                unknown key.
        """
        if not seal:
            if self.policy == "require":
                raise FormatError(f"{row} is not sealed, and vault_seals is require (a "
                                  "trusted writer can seal it: memos vault seal)", path=where)
            return None
        fp, _, b64 = seal[:MAX_SEAL].partition(" ")
        try:
            sig = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise FormatError(f"{row} has a malformed seal (changed outside memos?)",
                              path=where) from None
        signer = self.known.get(fp)
        if signer is None:
            if self.policy == "require":
                raise FormatError(f"{row} is sealed by a key this machine does not trust "
                                  f"({fp[:23]}...; memos trust add)", path=where)
            return None
        name, key = signer
        signed = message(domain, parts)
        entry = seal_cache.key(seal, signed) if cache is not None else b""
        if cache is not None and entry in cache:
            return name
        try:
            key.verify(sig, signed, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise FormatError(f"{row} does not match its seal by {name}: it was changed "
                              "outside memos (memos vault versions: earlier versions)",
                              path=where) from None
        if cache is not None:
            cache.add(entry)
        return name


@functools.lru_cache(maxsize=8)
def _sealer(path: str, _mtime: int) -> Sealer:
    key = load_private_key(Path(path))
    return Sealer(key, fingerprint_of(key.public_key()))


def sealer() -> Sealer | None:
    """The sealer of this machine's signing key (``MEMOS_KEY`` or the config file's ``key``),
    ``None`` without one.

    Raises:
        KeyFileError: the configured key is unreadable or not EC P-256.
    """
    path = signing_key(None)
    if path is None:
        return None
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as e:
        raise KeyFileError(f"cannot read the signing key: {e.strerror}", path=path) from e
    return _sealer(str(path), mtime)


def _trusted_state() -> tuple[tuple[str, int], ...]:
    d = trust_dir()
    try:
        return tuple(sorted((e.name, e.stat(follow_symlinks=False).st_mtime_ns)
                            for e in os.scandir(d) if e.name.endswith(".pub")))
    except OSError:
        return ()


@functools.lru_cache(maxsize=8)
def _checker(mode: str, own: str | None, _own_mtime: int, _trust: Any, _dir: str) -> Checker:
    known: dict[str, tuple[str, ec.EllipticCurvePublicKey]] = {}
    for entry in trust_list():
        known[entry["fingerprint"]] = (entry["name"], _load_public(Path(entry["path"])))
    if own is not None:
        key = load_private_key(Path(own)).public_key()
        known.setdefault(fingerprint_of(key), ("this machine's key", key))
    return Checker(mode, known)


def checker() -> Checker:
    """The seal checker of this process: the ``vault_seals`` policy, and the keys of the
    trust store and of the configured signing key (read again when either changes).

    Raises:
        UsageError: a bad ``vault_seals``. KeyFileError: a damaged trusted or signing key.
    """
    mode = vault_seals()
    own = signing_key(None)
    try:
        own_mtime = own.stat().st_mtime_ns if own is not None else 0
    except OSError as e:
        raise KeyFileError(f"cannot read the signing key: {e.strerror}", path=own) from e
    return _checker(mode, None if own is None else str(own), own_mtime, _trusted_state(),
                    str(trust_dir()))


#: The columns of a vault row that its seal covers, in order (spec §16.5).
SEALED = ("key", "kind", "id", "cube_id", "content_hash", "record")


def check_row(checker: Checker, row: Mapping[str, Any], where: Any,
              cache: Verified | None = None) -> None:
    """Check the seal of one vault row given as its values by column (:data:`SEALED`, and
    ``seal`` where the vault has it).

    Raises:
        FormatError: as :meth:`Checker.check`.
    """
    checker.check(ROW_DOMAIN, [str(row[c]) for c in SEALED], row.get("seal"),
                  row=f"row {row['key']}", where=where, cache=cache)


def check_table(table: Any, checker: Checker, where: Any) -> None:
    """Check the seal of every row of an Arrow table read from the vault (it holds
    :data:`SEALED` and, when the vault has it, ``seal``).

    Raises:
        FormatError: as :meth:`Checker.check`, for the first row refused.
    """
    if not checker.active or table is None or table.num_rows == 0:
        return
    names = [*SEALED, "seal"] if "seal" in table.column_names else list(SEALED)
    cols = [table.column(c).to_pylist() for c in names]
    cache = Verified() if checker.known and table.num_rows >= seal_cache.MIN_ROWS else None
    for values in zip(*cols, strict=True):
        check_row(checker, dict(zip(names, values, strict=True)), where, cache)
    if cache is not None:
        cache.save()
